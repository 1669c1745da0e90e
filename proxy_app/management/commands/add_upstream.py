"""Add (or update) an upstream: a Gemini or OpenAI-compatible server the gateway calls."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import URLValidator

from accounts.audit import AuditedCommand
from proxy_app.models import Upstream


class Command(AuditedCommand):
    help = (
        "Add or update an upstream. The key is stored encrypted (--api-key) "
        "or read from an env variable (--api-key-env)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--kind", choices=[k.value for k in Upstream.Kind], required=True)
        parser.add_argument("--base-url", required=True)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--api-key", default="")
        group.add_argument("--api-key-env", default="")
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args, **opts):
        try:
            URLValidator(schemes=["http", "https"])(opts["base_url"])
        except ValidationError:
            raise CommandError(f"--base-url {opts['base_url']!r} is not an http(s) URL") from None
        upstream, created = Upstream.objects.get_or_create(
            name=opts["name"], defaults={"kind": opts["kind"], "base_url": opts["base_url"]}
        )
        upstream.kind, upstream.base_url = opts["kind"], opts["base_url"].rstrip("/")
        upstream.enabled = not opts["disabled"]
        if opts["api_key"]:
            upstream.set_api_key(opts["api_key"])
            upstream.api_key_env = ""
        elif opts["api_key_env"]:
            upstream.api_key_env, upstream.api_key_encrypted = opts["api_key_env"], ""
        upstream.full_clean()
        upstream.save()
        self.stdout.write(
            f"{'Added' if created else 'Updated'} upstream {upstream.name!r} ({upstream.kind}, {upstream.base_url})."
        )
