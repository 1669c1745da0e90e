"""Create the first admin account if there is none (used by `make run`)."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a superuser 'admin' when no superuser exists (password: $DJANGO_SUPERUSER_PASSWORD or generated)."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("DJANGO_SUPERUSER_USERNAME", "admin"))

    def handle(self, *args, **opts):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already.")
            return
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(opts["username"], email="", password=password)
        self.stdout.write(f"Created admin account {opts['username']!r}.")
        if not os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            self.stdout.write(f"Generated password (shown once): {password}")
