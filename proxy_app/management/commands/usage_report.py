"""Token totals per user and model, as a table or JSON."""

from datetime import datetime

import orjson
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from proxy_app.ledger.reports import report, totals


class Command(BaseCommand):
    help = "Usage totals per user and model (requests, prompt, completion, total tokens)."

    def add_arguments(self, parser):
        parser.add_argument("--user", default=None)
        parser.add_argument("--since", default=None, help="YYYY-MM-DD (UTC)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        since = None
        if opts["since"]:
            try:
                since = datetime.strptime(opts["since"], "%Y-%m-%d").date()
            except ValueError:
                raise CommandError(f"--since {opts['since']!r} is not a date like 2026-01-31") from None
        if opts["user"] and not get_user_model().objects.filter(username=opts["user"]).exists():
            raise CommandError(f"no user named {opts['user']!r}")
        rows = report(username=opts["user"], since=since)
        if opts["json"]:
            self.stdout.write(orjson.dumps({"rows": rows, "totals": totals(rows)}).decode())
            return
        header = f"{'user':<20} {'model':<32} {'requests':>9} {'prompt':>10} {'completion':>11} {'total':>10}"
        self.stdout.write(header)
        for r in rows + [{"user": "TOTAL", "model": "", **totals(rows)}]:
            self.stdout.write(
                f"{r['user']:<20} {r['model']:<32} {r['requests']:>9} {r['prompt_tokens']:>10} "
                f"{r['completion_tokens']:>11} {r['total_tokens']:>10}"
            )
