"""Every failure the gateway reports, as one exception tree with HTTP status and a stable code.

Dialects render these into their own error body (OpenAI, Gemini, Ollama); nothing else decides
a status code.

GatewayError
 ├── InvalidRequest ........ 400 (malformed JSON, wrong types, unsupported values; `param` names the field)
 ├── Unauthorized .......... 401 (missing / unknown / revoked / expired key)
 ├── Forbidden ............. 403 (model not allowed for this key)
 ├── NotFound .............. 404 (unknown model or route)
 ├── PayloadTooLarge ....... 413
 ├── RateLimited ........... 429 (+ retry_after)
 ├── UpstreamError ......... 502 (bad upstream reply, upstream auth/config failure, broken stream)
 ├── UpstreamUnavailable ... 503 (unreachable, overloaded, or no upstream configured)
 └── UpstreamTimeout ....... 504
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 500
    code: str | None = "internal_error"
    kind = "server_error"  # OpenAI `error.type`
    # What the upstream said, for failover (proxy_app.call.failover): the HTTP status of the
    # upstream's error reply, whether it could not be reached at all (refused, timed out, dropped
    # before answering), and the wait it asked for (Retry-After / RetryInfo), when it named one.
    upstream_status: int | None = None
    unreachable: bool = False
    retry_hint: int | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.param = param
        self.retry_after = retry_after


class InvalidRequest(GatewayError):
    status = 400
    code = None
    kind = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    code = "invalid_api_key"
    kind = "invalid_request_error"


class Forbidden(GatewayError):
    status = 403
    code = "model_not_allowed"
    kind = "invalid_request_error"


class NotFound(GatewayError):
    status = 404
    code = "model_not_found"
    kind = "invalid_request_error"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "request_too_large"
    kind = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limit_exceeded"
    kind = "requests"


class UpstreamError(GatewayError):
    status = 502
    code = "bad_gateway"


class UpstreamUnavailable(GatewayError):
    status = 503
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    code = "timeout"
