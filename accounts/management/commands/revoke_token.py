"""Revoke a key by its visible prefix or by its name."""

from django.core.management.base import CommandError

from accounts.audit import AuditedCommand
from accounts.services import KeyServiceError, revoke_key


class Command(AuditedCommand):
    help = "Revoke an API key by prefix (gw-xxxxxxxx) or name. It stops working within seconds."

    def add_arguments(self, parser):
        parser.add_argument("prefix_or_name")

    def handle(self, *args, **opts):
        try:
            keys = revoke_key(opts["prefix_or_name"])
        except KeyServiceError as exc:
            raise CommandError(str(exc)) from None
        for key in keys:
            self.stdout.write(f"Revoked {key.name!r} ({key.prefix}) of {key.user.username}.")
