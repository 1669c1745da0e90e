"""Delete stored /v1/responses answers past their retention (safe from cron).

prune_responses                     # GATEWAY_RESPONSES_RETENTION_DAYS (default 30; 0 keeps all)
prune_responses --retention-days 7  # this run only
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from proxy_app.dialects.responses import store


class Command(BaseCommand):
    help = "Delete stored Responses API answers older than the retention (previous_response_id state)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days", type=int, default=None, help="Default: GATEWAY_RESPONSES_RETENTION_DAYS."
        )

    def handle(self, *args, **opts):
        days = opts["retention_days"]
        if days is not None and days < 0:
            raise CommandError("--retention-days must be 0 (keep forever) or more")
        self.stdout.write(f"pruned {store.prune(days)} stored responses")
