"""Apply a config file (TOML or YAML): upstreams, model mappings, prices, users, keys' metadata, limits, settings.

    apply_config config/example.toml             # create / update, print what changed
    apply_config config/example.toml --dry-run   # print the diff, write nothing
    apply_config gateway.yaml --prune            # also delete rows the file's sections do not list

One transaction: a mistake anywhere (reported with its file line) leaves the database as it was.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts.audit import AuditedCommand
from proxy_app.config.apply import apply_file
from proxy_app.config.entries import ConfigError
from proxy_app.config.fileformat import ConfigFileError


class Command(AuditedCommand):
    help = "Make the database match a TOML/YAML config file, in one transaction (see README: Config as code)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="A .toml, .yaml or .yml file.")
        parser.add_argument("--dry-run", action="store_true", help="Print the changes; write nothing.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Delete upstreams, models, prices and limits not listed in the file's sections (never users or keys).",
        )

    def handle(self, *args, **opts):
        try:
            changes, warnings = apply_file(opts["file"], dry_run=opts["dry_run"], prune=opts["prune"])
        except (ConfigError, ConfigFileError) as exc:
            raise CommandError(f"{exc}\nNothing was changed.") from None
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
        for change in changes:
            self.stdout.write(change)
        if not changes:
            self.stdout.write("No changes: the database already matches the file.")
        elif opts["dry_run"]:
            self.stdout.write(f"Dry run: {len(changes)} change(s) shown, nothing written.")
        else:
            self.stdout.write(f"Applied {len(changes)} change(s).")
