"""What the fake Gemini API accepts and how it says no: models, errors, request checks.

Pure functions, no I/O. Messages are Google's own where known (see
docs/reference/gemini.md §2-§4, §12, §13 and the public issue threads it cites).
"""

from __future__ import annotations

import json
import re
from typing import Any

# --------------------------------------------------------------------------- models (§12)

_CHAT_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]


def _chat_model(model_id: str, version: str, display: str, description: str, **extra: Any) -> dict:
    return {
        "name": f"models/{model_id}",
        "baseModelId": model_id,
        "version": version,
        "displayName": display,
        "description": description,
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": list(_CHAT_METHODS),
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
        **extra,
    }


def default_models() -> list[dict]:
    """Model objects as GET /v1beta/models returns them (proto3: no default values)."""
    flash_20 = _chat_model(
        "gemini-2.0-flash", "2.0", "Gemini 2.0 Flash", "Gemini 2.0 Flash", outputTokenLimit=8192, topK=40
    )
    del flash_20["thinking"]
    return [
        _chat_model(
            "gemini-2.5-flash",
            "001",
            "Gemini 2.5 Flash",
            "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that "
            "supports up to 1 million tokens, released in June of 2025.",
        ),
        _chat_model("gemini-2.5-pro", "2.5", "Gemini 2.5 Pro", "Stable release (June 17th, 2025) of Gemini 2.5 Pro"),
        _chat_model(
            "gemini-3-flash-preview", "3-flash-preview-12-2025", "Gemini 3 Flash Preview", "Gemini 3 Flash Preview"
        ),
        flash_20,
        {
            "name": "models/gemini-embedding-001",
            "version": "001",
            "displayName": "Gemini Embedding 001",
            "description": "Obtain a distributed representation of a text.",
            "inputTokenLimit": 2048,
            "outputTokenLimit": 1,
            "supportedGenerationMethods": ["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"],
        },
    ]


# Which supportedGenerationMethods entry an URL action needs.
ACTION_METHOD = {
    "generateContent": "generateContent",
    "streamGenerateContent": "generateContent",
    "countTokens": "countTokens",
    "embedContent": "embedContent",
    "batchEmbedContents": "embedContent",
}

# --------------------------------------------------------------------------- errors (§13)

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

DEFAULT_MESSAGES = {
    429: "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}

KEY_INVALID = "API key not valid. Please pass a valid API key."
NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
BEARER_REJECTED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
    "login cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class GoogleError(Exception):
    """An error Google would answer with: HTTP status + google.rpc.Status body."""

    def __init__(
        self, code: int, message: str | None = None, status: str | None = None, details: list[dict] | None = None
    ) -> None:
        self.code = code
        self.message = message or DEFAULT_MESSAGES.get(code, "Request contains an invalid argument.")
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")
        self.details = details
        super().__init__(f"{code} {self.status}: {self.message}")

    def body(self) -> dict:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str) -> GoogleError:
    return GoogleError(400, message)


def key_invalid() -> GoogleError:
    """Exactly what Google sends for a wrong API key (HTTP 400, not 401)."""
    return GoogleError(
        400,
        KEY_INVALID,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": KEY_INVALID},
        ],
    )


def bearer_rejected() -> GoogleError:
    return GoogleError(
        401,
        BEARER_REJECTED,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "generativelanguage.googleapis.com",
                    "method": "google.ai.generativelanguage.v1beta.GenerativeService",
                },
            }
        ],
    )


def model_not_found(model: str, action: str, version: str = "v1beta") -> GoogleError:
    return GoogleError(
        404,
        f"models/{model} is not found for API version {version}, or is not "
        f"supported for {action}. Call ListModels to see the list of available "
        "models and their supported methods.",
    )


def scripted_error(
    status: int = 500,
    message: str | None = None,
    status_name: str | None = None,
    details: list[dict] | None = None,
    retry_delay: str | None = None,
    model: str = "gemini-2.5-flash",
) -> GoogleError:
    """An upstream failure; 429 gets Google's QuotaFailure + Help + RetryInfo details."""
    if status == 429 and details is None:
        retry_delay = retry_delay or "37s"
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": "10",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
        ]
    if retry_delay:
        details = [*(details or []), {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return GoogleError(status, message, status_name, details)


# --------------------------------------------------------------------------- request parsing (§2)

# Values under these keys are free-form JSON: their own keys are never rewritten.
_FREE_FORM = {
    "args",
    "response",
    "parametersJsonSchema",
    "responseJsonSchema",
    "example",
    "default",
    "partMetadata",
    "labels",
}


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest) if rest and head else key


def normalise(value: Any) -> Any:
    """snake_case and camelCase keys are both accepted at any depth: read everything as camel."""
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        key = camel(key)
        if key in _FREE_FORM:
            out[key] = item
        elif key == "properties" and isinstance(item, dict):  # property names are user data
            out[key] = {name: normalise(schema) for name, schema in item.items()}
        else:
            out[key] = normalise(item)
    return out


# --------------------------------------------------------------------------- validation (§2-§4)

TOP_LEVEL = {
    "contents",
    "model",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
    "serviceTier",
    "store",
}
GENERATION_CONFIG = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
}
_DATA_FIELDS = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")
PAIRING = (
    "Please ensure that the number of function response parts is equal to the number of "
    "function call parts of the function call turn."
)
CALL_PLACEMENT = (
    "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
)
RESPONSE_PLACEMENT = "Please ensure that function response turn comes immediately after a function call turn."
SIGNATURE_MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required for "
    "tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {position}. "
    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def snake(key: str) -> str:
    return _SNAKE.sub("_", key).lower()


def reject_unknown(raw: dict, known: set[str], where: str | None = None) -> None:
    for key in raw:
        if camel(key) not in known:
            at = f" at '{where}'" if where else ""
            raise bad_request(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.')


def validate_generate(raw: dict, req: dict, model: str) -> None:
    """Raise GoogleError for the mistakes Google rejects cheaply and recognisably."""
    reject_unknown(raw, TOP_LEVEL)
    raw_config = next((v for k, v in raw.items() if camel(k) == "generationConfig"), None)
    if isinstance(raw_config, dict):
        reject_unknown(raw_config, GENERATION_CONFIG, "generation_config")
    contents = req.get("contents")
    if not contents:
        raise bad_request("* GenerateContentRequest.contents: contents is not specified")
    for index, content in enumerate(contents):
        _validate_content(index, content)
    _validate_function_turns(contents)
    _validate_generation_config(req.get("generationConfig") or {}, model)
    if model.startswith("gemini-3"):
        _validate_signatures(contents)


def _validate_content(index: int, content: dict) -> None:
    if content.get("role", "user") not in ("user", "model"):
        raise bad_request("Please use a valid role: user, model.")
    parts = content.get("parts")
    if not parts:
        raise bad_request(f"* GenerateContentRequest.contents[{index}].parts: contents.parts must not be empty.")
    for number, part in enumerate(parts):
        present = [name for name in _DATA_FIELDS if part.get(name) is not None]
        if not present:
            raise bad_request(
                f"* GenerateContentRequest.contents[{index}].parts[{number}].data: "
                "required oneof field 'data' must have one initialized field"
            )
        if len(present) > 1:
            raise bad_request(
                f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{snake(present[1])}'"
            )
        for name, key in (("functionCall", "args"), ("functionResponse", "response")):
            value = (part.get(name) or {}).get(key)
            if value is not None and not isinstance(value, dict):
                raise bad_request(
                    f"Invalid value at 'contents[{index}].parts[{number}].{snake(name)}.{key}' "
                    f"(type.googleapis.com/google.protobuf.Struct), {json.dumps(value)}"
                )


def _count(content: dict, name: str) -> int:
    return sum(1 for part in content.get("parts") or [] if name in part)


def _validate_function_turns(contents: list[dict]) -> None:
    for index, content in enumerate(contents):
        calls = _count(content, "functionCall") if content.get("role") == "model" else 0
        answers = _count(content, "functionResponse")
        if calls:
            if index == 0 or contents[index - 1].get("role", "user") != "user":
                raise bad_request(CALL_PLACEMENT)
            if index + 1 < len(contents) and _count(contents[index + 1], "functionResponse") != calls:
                raise bad_request(PAIRING)
        if answers:
            previous = contents[index - 1] if index else {}
            if previous.get("role") != "model" or not _count(previous, "functionCall"):
                raise bad_request(RESPONSE_PLACEMENT)


def _validate_generation_config(config: dict, model: str) -> None:
    seed = config.get("seed")
    if seed is not None and not -(2**31) <= int(seed) < 2**31:
        raise bad_request(f"Invalid value at 'generation_config.seed' (TYPE_INT32), {seed}")
    stops = config.get("stopSequences")
    if stops is not None and not 1 <= len(stops) <= 5:
        raise bad_request(
            f"Unable to submit request because it has a stopSequences value of "
            f"{len(stops)} but the supported range is from 1 (inclusive) to 6 "
            "(exclusive). Update the value and try again."
        )
    thinking = config.get("thinkingConfig") or {}
    if "thinkingBudget" in thinking and "thinkingLevel" in thinking:
        raise bad_request("thinking_budget and thinking_level are not supported together.")
    if "thinkingLevel" in thinking and not model.startswith("gemini-3"):
        raise bad_request("Thinking level is not supported for this model.")


def _validate_signatures(contents: list[dict]) -> None:
    """Gemini 3 checks the first functionCall of every model step in the current turn (§3.2)."""
    start = 0
    for index, content in enumerate(contents):  # current turn: after the last real user message
        if content.get("role", "user") == "user" and not _count(content, "functionResponse"):
            start = index
    for index in range(start, len(contents)):
        calls = [p for p in contents[index].get("parts") or [] if "functionCall" in p]
        if contents[index].get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
            raise bad_request(SIGNATURE_MISSING.format(name=calls[0]["functionCall"].get("name"), position=index + 1))
