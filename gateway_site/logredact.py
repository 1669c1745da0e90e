"""API keys never reach a server's access log, whichever server runs the app.

Gemini clients may send their key in the URL: `?key=`, or percent-encoded (`?%6Bey=`), which
Django decodes to the same parameter. The gateway's own JSON access line shows only a key's
public prefix, but servers log the URL as it arrived. `install()` runs when gateway_site.asgi is
imported, so under every server that loads the app (the launcher, or `daphne`, `uvicorn` or
`granian gateway_site.asgi:application` run directly). It masks key values in daphne's access
log (a stream writer, not a logger) and, through a logging filter, in uvicorn's and granian's.
"""

from __future__ import annotations

import logging
import re

# key (each letter also percent-encoded, any case), api_key, access_token: the value up to & or #;
# at the start too (granian hands its log the query string alone).
_KEY_IN_QUERY = re.compile(
    r"((?:^|[?&])(?:(?:k|%6b)(?:e|%65)(?:y|%79)|api_key|access_token)=)[^&#\s\"]*",
    re.IGNORECASE,
)
SERVER_ACCESS_LOGGERS = ("uvicorn.access", "granian.access")


def redact(text: str) -> str:
    return _KEY_IN_QUERY.sub(r"\1[redacted]", text)


class RedactKeys(logging.Filter):
    """Masks key values in a record's message and arguments (uvicorn passes the path as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


_FILTER = RedactKeys()


def install() -> None:
    """Idempotent: safe to call in every worker process and again after logging is reconfigured."""
    for name in SERVER_ACCESS_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # daphne not installed: nothing to patch
        return
    if getattr(AccessLogGenerator, "_gateway_redacts", False):
        return
    original = AccessLogGenerator.__call__

    def redacting_call(self, protocol, action, details):
        if "path" in details:
            details = {**details, "path": redact(str(details["path"]))}
        return original(self, protocol, action, details)

    AccessLogGenerator.__call__ = redacting_call
    AccessLogGenerator._gateway_redacts = True
