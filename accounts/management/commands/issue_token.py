"""Issue an API key; the key is printed alone on the last line of stdout (for scripts)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.services import KeyServiceError, get_or_create_user, issue_key


class Command(BaseCommand):
    help = "Issue a personal API key to a user. The key is shown once, on the last line."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true", help="Create the user if it does not exist.")
        parser.add_argument("--name", default="", help="A name for the key (unique per user).")
        parser.add_argument("--models", default="", help="Comma-separated aliases the key may use (default: all).")
        parser.add_argument("--expires-days", type=int, default=None, help="Expire the key after N days.")

    def handle(self, *args, **opts):
        if opts["expires_days"] is not None and opts["expires_days"] <= 0:
            raise CommandError("--expires-days must be a positive number of days")
        models = [m.strip() for m in opts["models"].split(",") if m.strip()]
        try:
            user = get_or_create_user(opts["username"], create=opts["create_user"])
            key, secret = issue_key(user, name=opts["name"], models=models, expires_days=opts["expires_days"])
        except KeyServiceError as exc:
            raise CommandError(str(exc)) from None
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        self.stdout.write(f"Issued key {key.name!r} ({key.prefix}) for {user.username}; expires: {expiry}.")
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(secret)
