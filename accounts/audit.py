"""Who made a change, for the audit log (django-auditlog): the admin's logged-in user, or a command.

The models it tracks and the fields it leaves out (key hashes, encrypted upstream keys) are listed in
settings.AUDITLOG_INCLUDE_TRACKING_MODELS. Admin and member pages set the actor per request
(gateway_site/middleware.py); a management command wraps its writes in `command("NAME")`, which
marks every entry with {"source": "command:NAME"} in its additional data and as its correlation id.
"""

from __future__ import annotations

import contextlib
import uuid

from auditlog.context import set_extra_data


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
