"""Set or clear the IP allow-list of an existing API key (by prefix, or by name when unique)."""

from django.core.management.base import CommandError

from accounts.audit import AuditedCommand
from accounts.services import KeyServiceError, find_key, set_allowed_ips


class Command(AuditedCommand):
    help = "Replace the IPs/CIDRs an API key may be used from (--allow-ip, repeatable), or allow any (--any)."

    def add_arguments(self, parser):
        parser.add_argument("key", help="The key's prefix (gw-...), or its name when no other key has it.")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--allow-ip", action="append", default=[], metavar="CIDR", help="An allowed IP or CIDR (repeatable)."
        )
        which.add_argument("--any", action="store_true", help="Remove the allow-list: any address may use the key.")

    def handle(self, *args, **opts):
        try:
            key = set_allowed_ips(find_key(opts["key"]), [] if opts["any"] else opts["allow_ip"])
        except KeyServiceError as exc:
            raise CommandError(str(exc)) from None
        where = ", ".join(key.allowed_ips) or "any address"
        self.stdout.write(f"Key {key.name!r} ({key.prefix}) of {key.user.username} is usable from: {where}.")
