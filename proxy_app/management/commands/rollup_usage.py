"""Roll complete past days of usage into daily totals and prune old raw rows (safe from cron).

rollup_usage                       # retention from the admin (Usage retention), else the setting
rollup_usage --retention-days 30   # this run only
rollup_usage --retention-days 0    # roll up, prune nothing
rollup_usage --since 2026-01-01    # re-roll from this day (days whose raw rows still exist)
"""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from proxy_app.ledger import rollup


class Command(BaseCommand):
    help = "Roll usage records of complete UTC days into daily per user x model totals; prune old raw rows."

    def add_arguments(self, parser):
        parser.add_argument(
            "--retention-days",
            type=int,
            default=None,
            help="Keep raw rows this many days (0: forever). Default: the admin's value, "
            "else GATEWAY_USAGE_RETENTION_DAYS.",
        )
        parser.add_argument("--since", default=None, help="YYYY-MM-DD (UTC): re-roll from this day.")

    def handle(self, *args, **opts):
        retention = opts["retention_days"]
        if retention is not None and retention < 0:
            raise CommandError("--retention-days must be 0 (keep forever) or more")
        since = None
        if opts["since"]:
            try:
                since = datetime.strptime(opts["since"], "%Y-%m-%d").date()
            except ValueError:
                raise CommandError(f"--since {opts['since']!r} is not a date like 2026-01-31") from None
        result = rollup.run(retention=retention, since=since)
        if result.days:
            span = f"{result.days[0]}..{result.days[-1]}" if len(result.days) > 1 else f"{result.days[0]}"
            self.stdout.write(f"rolled up {len(result.days)} day(s) ({span}) into {result.daily_rows} daily rows")
        else:
            self.stdout.write("nothing to roll up")
        if not result.retention_days:
            self.stdout.write("raw usage rows are kept forever (retention 0)")
        elif result.pruned_before is None:
            self.stdout.write("nothing pruned: no day is rolled up yet")
        else:
            self.stdout.write(
                f"pruned {result.pruned_rows} raw usage rows of days before {result.pruned_before} "
                f"(retention {result.retention_days} days)"
            )
