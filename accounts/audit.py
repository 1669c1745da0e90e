"""Who made a change, for the audit log (django-auditlog): the admin's logged-in user, or a command.

The models it tracks and the fields it leaves out (key hashes, encrypted upstream keys) are listed in
settings.AUDITLOG_INCLUDE_TRACKING_MODELS. Admin and member pages set the actor per request
(gateway_site/middleware.py); a management command that writes subclasses `AuditedCommand` (or
wraps its writes in `command("NAME")`), which marks every entry with {"source": "command:NAME"} in
its additional data and a correlation id per run ("command:NAME:<run id>").
"""

from __future__ import annotations

import contextlib
import uuid

from auditlog.context import set_extra_data
from django.core.management.base import BaseCommand


def command_source(name: str) -> str:
    return f"command:{name}"


@contextlib.contextmanager
def command(name: str):
    """Every audited change inside is attributed to the command `name` (one correlation id per run)."""
    source = command_source(name)
    data = {"additional_data": {"source": source}, "cid": f"{source}:{uuid.uuid4().hex[:12]}"}
    with set_extra_data(context_data=data):
        yield


@contextlib.contextmanager
def request_actor(user, remote_addr: str | None, source: str):
    """The logged-in user of an admin or member page as the actor of the changes of one request."""
    data = {"actor": user, "remote_addr": remote_addr, "additional_data": {"source": source}}
    with set_extra_data(context_data=data):
        yield


class AuditedCommand(BaseCommand):
    """A management command whose changes the audit log attributes to it ("command:<its name>")."""

    def execute(self, *args, **options):
        with command(type(self).__module__.rsplit(".", 1)[-1]):
            return super().execute(*args, **options)


def hide_secret(value: str) -> str:
    """What the audit log keeps of a secret-bearing field (mask_callable): whether it is set, no more."""
    return "(set)" if value and value != "None" else "(none)"
