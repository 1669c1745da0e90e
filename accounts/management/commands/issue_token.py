"""Issue an API key; the key is printed alone on the last line of stdout (for scripts)."""

from datetime import UTC, date, datetime, time, timedelta

from django.core.management.base import CommandError

from accounts.audit import AuditedCommand
from accounts.services import KeyServiceError, get_or_create_user, issue_key


def parse_expiry(text: str) -> datetime:
    """ISO date or date-time -> an aware datetime. A date alone means the END of that UTC day (the
    key works all day and stops at the next midnight UTC); a date-time without an offset is UTC."""
    try:
        if "T" not in text and " " not in text.strip():
            day = date.fromisoformat(text.strip())
            return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"--expires-at {text!r} is not an ISO date (2026-12-31) or date-time (2026-12-31T18:00:00+01:00)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Command(AuditedCommand):
    help = "Issue a personal API key to a user. The key is shown once, on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true", help="Create the user if it does not exist.")
        parser.add_argument("--name", default="", help="A name for the key (unique per user).")
        parser.add_argument("--models", default="", help="Comma-separated aliases the key may use (default: all).")
        parser.add_argument(
            "--allow-ip",
            action="append",
            default=[],
            metavar="CIDR",
            help="An IP or CIDR the key may be used from (repeatable; default: any address).",
        )
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-days", type=int, default=None, help="Expire the key after N days (0: expires now)."
        )
        expiry.add_argument(
            "--expires-at",
            default=None,
            help="Expire the key at an ISO date-time (UTC unless it has an offset) or at the end of an "
            "ISO date (UTC); a past moment makes an already-expired key.",
        )

    def handle(self, *args, **opts):
        if opts["expires_days"] is not None and opts["expires_days"] < 0:
            raise CommandError("--expires-days must be 0 (expires now) or more; use --expires-at for a past moment")
        expires_at = parse_expiry(opts["expires_at"]) if opts["expires_at"] else None
        models = [m.strip() for m in opts["models"].split(",") if m.strip()]
        try:
            user = get_or_create_user(opts["username"], create=opts["create_user"])
            key, secret = issue_key(
                user,
                name=opts["name"],
                models=models,
                expires_days=opts["expires_days"],
                expires_at=expires_at,
                allowed_ips=opts["allow_ip"],
            )
        except KeyServiceError as exc:
            raise CommandError(str(exc)) from None
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        where = ", ".join(key.allowed_ips) or "any address"
        self.stdout.write(
            f"Issued key {key.name!r} ({key.prefix}) for {user.username}; expires: {expiry}; usable from: {where}."
        )
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(secret)
