"""Write the gateway's configuration as a file apply_config reads (TOML, or YAML with --format yaml); no secrets."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from proxy_app.config import fileformat
from proxy_app.config.export import export_data


class Command(BaseCommand):
    help = "Print (or write with --output FILE) the current config: upstreams, models, prices, users, limits, settings."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="Write to this file (.toml / .yaml / .yml) instead of stdout.")
        parser.add_argument("--format", choices=["toml", "yaml"], help="Default: from --output's name, else toml.")
        parser.add_argument("--keys", action="store_true", help="Also keys' metadata and keys' limits (never secrets).")

    def handle(self, *args, **opts):
        fmt = opts["format"]
        if fmt is None and opts["output"]:
            try:
                fmt = fileformat.format_of(opts["output"])
            except fileformat.ConfigFileError as exc:
                raise CommandError(str(exc)) from None
        text = fileformat.dump(export_data(keys=opts["keys"]), fmt or "toml")
        if opts["output"]:
            Path(opts["output"]).write_text(text, encoding="utf-8")
            self.stdout.write(f"Wrote {opts['output']}.")
        else:
            self.stdout.write(text, ending="")
