"""`python -m gateway_site.serve`: daphne's command line, with API keys kept out of its access log.

Daphne prints every request's full URL to its access log, and Gemini clients may send the key
as `?key=...`. This runs daphne's own CLI with an access logger that masks `key=` values.
Usage is daphne's: `python -m gateway_site.serve -b 127.0.0.1 -p 8000 gateway_site.asgi:application`.
"""

from __future__ import annotations

import re
import sys

from daphne.access import AccessLogGenerator
from daphne.cli import CommandLineInterface
from daphne.server import Server

_KEY_IN_QUERY = re.compile(r"([?&](?:key|api_key|access_token)=)[^&#\s]*", re.IGNORECASE)


def redact(path: str) -> str:
    return _KEY_IN_QUERY.sub(r"\1[redacted]", path)


class RedactingAccessLog(AccessLogGenerator):
    def __call__(self, protocol, action, details):
        if "path" in details:
            details = {**details, "path": redact(str(details["path"]))}
        return super().__call__(protocol, action, details)


class RedactingServer(Server):
    def __init__(self, *args, action_logger=None, **kwargs):
        if isinstance(action_logger, AccessLogGenerator):
            action_logger = RedactingAccessLog(action_logger.stream)
        super().__init__(*args, action_logger=action_logger, **kwargs)


class GatewayCLI(CommandLineInterface):
    server_class = RedactingServer


def main(argv: list[str] | None = None) -> None:
    GatewayCLI().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
