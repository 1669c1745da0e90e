"""Map a model alias clients send (e.g. gpt-4o) to an upstream model (e.g. gemini-2.5-flash): one pool member.

Mapping the alias again with another --upstream adds a member to its pool; the same upstream again
updates that member (its model, priority, weight).
"""

from django.core.management.base import CommandError
from django.db import transaction

from accounts.audit import AuditedCommand
from proxy_app.models import ModelMapping, PoolMember, Upstream


class Command(AuditedCommand):
    help = (
        "Map ALIAS to UPSTREAM_MODEL on --upstream NAME (default: the GEMINI_API_KEY upstream). Another "
        "--upstream adds a pool member; the same one again updates it."
    )

    def add_arguments(self, parser):
        parser.add_argument("alias")
        parser.add_argument("upstream_model")
        parser.add_argument("--upstream", default="", help="Upstream name (see add_upstream).")
        parser.add_argument("--priority", type=int, default=None, help="Lower is tried first (default 0).")
        parser.add_argument("--weight", type=int, default=None, help="Share among equal priorities (default 1).")
        parser.add_argument("--hidden", action="store_true", help="Routable but left out of model lists.")

    def handle(self, *args, **opts):
        for name in ("priority", "weight"):
            if opts[name] is not None and not 0 <= opts[name] <= 32767:
                raise CommandError(f"--{name} must be between 0 and 32767, not {opts[name]}")
        if opts["weight"] == 0:
            raise CommandError("--weight must be at least 1")
        upstream = None
        if opts["upstream"]:
            upstream = Upstream.objects.filter(name=opts["upstream"]).first()
            if upstream is None:
                raise CommandError(f"no upstream named {opts['upstream']!r} (add it with add_upstream)")
        with transaction.atomic():
            mapping, _ = ModelMapping.objects.get_or_create(alias=opts["alias"])
            if mapping.hidden != opts["hidden"]:
                mapping.hidden = opts["hidden"]
                mapping.save(update_fields=["hidden"])
            member = PoolMember.objects.filter(mapping=mapping, upstream=upstream).first()
            created = member is None
            member = member or PoolMember(mapping=mapping, upstream=upstream)
            member.upstream_model = opts["upstream_model"]
            member.priority = opts["priority"] if opts["priority"] is not None else member.priority
            member.weight = opts["weight"] if opts["weight"] is not None else member.weight
            member.save()
            size = mapping.members.count()
        target = upstream.name if upstream else "default Gemini upstream"
        verb = "Mapped" if created else "Re-mapped"
        pool = f" (pool of {size}: priority {member.priority}, weight {member.weight})" if size > 1 else ""
        self.stdout.write(
            f"{verb} {mapping.alias!r} → {member.upstream_model!r} on {target}{pool}"
            f"{' (hidden)' if mapping.hidden else ''}."
        )
