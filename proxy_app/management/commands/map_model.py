"""Map a model alias clients send (e.g. gpt-4o) to an upstream model (e.g. gemini-2.5-flash)."""

from django.core.management.base import CommandError

from accounts.audit import AuditedCommand
from proxy_app.models import ModelMapping, Upstream


class Command(AuditedCommand):
    help = "Map ALIAS to UPSTREAM_MODEL on --upstream NAME (default: the GEMINI_API_KEY upstream)."

    def add_arguments(self, parser):
        parser.add_argument("alias")
        parser.add_argument("upstream_model")
        parser.add_argument("--upstream", default="", help="Upstream name (see add_upstream).")
        parser.add_argument("--hidden", action="store_true", help="Routable but left out of model lists.")

    def handle(self, *args, **opts):
        upstream = None
        if opts["upstream"]:
            upstream = Upstream.objects.filter(name=opts["upstream"]).first()
            if upstream is None:
                raise CommandError(f"no upstream named {opts['upstream']!r} (add it with add_upstream)")
        mapping, created = ModelMapping.objects.update_or_create(
            alias=opts["alias"],
            defaults={"upstream": upstream, "upstream_model": opts["upstream_model"], "hidden": opts["hidden"]},
        )
        target = upstream.name if upstream else "default Gemini upstream"
        verb = "Mapped" if created else "Re-mapped"
        self.stdout.write(
            f"{verb} {mapping.alias!r} → {mapping.upstream_model!r} on {target}{' (hidden)' if mapping.hidden else ''}."
        )
