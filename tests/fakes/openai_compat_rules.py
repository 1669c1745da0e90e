"""What the fake OpenAI API accepts and how it says no: models, errors, request checks.

Pure functions, no I/O. Messages are OpenAI's own where known (see
docs/reference/openai.md §2, §6, §7, §9).
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.openai_compat_replies import text_of

# --------------------------------------------------------------------------- models (§7)

# The resolved snapshot OpenAI names in replies (clients asked for the alias).
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4.1": "gpt-4.1-2025-04-14"}
EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def default_models() -> list[dict]:
    """GET /v1/models entries (openai.md §7)."""
    rows = [
        ("gpt-4o-mini", 1721172741, "system"),
        ("gpt-4.1", 1744316542, "system"),
        ("o4-mini", 1744225351, "system"),
        ("text-embedding-3-small", 1705948997, "system"),
        ("text-embedding-3-large", 1705953180, "system"),
        ("text-embedding-ada-002", 1671217299, "openai-internal"),
    ]
    return [{"id": i, "object": "model", "created": c, "owned_by": o} for i, c, o in rows]


# --------------------------------------------------------------------------- errors (§9)

NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username. You "
    "can obtain an API key from https://platform.openai.com/account/api-keys."
)
BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)
INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
DEFAULT_ERRORS = {  # status -> (message, type, code)
    400: ("Invalid request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: ("Project does not have access to this model.", "invalid_request_error", "model_not_found"),
    404: (
        "The model `gpt-5` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    429: (
        "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error processing your request. Sorry about that! You can retry your request, "
        "or contact us through our help center at help.openai.com if you keep seeing this error.",
        "server_error",
        None,
    ),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


class OpenAIError(Exception):
    """An OpenAI error reply: HTTP status and {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict | None = None,
        retry_after: str | None = None,
    ) -> None:
        default = DEFAULT_ERRORS.get(
            status, (f"Error {status}", "server_error" if status >= 500 else "invalid_request_error", None)
        )
        self.status, self.message = status, message or default[0]
        self.type = type or default[1]
        self.code = code if code is not None or message else default[2]
        self.param = param
        self.headers = dict(headers or {})
        if status == 429:
            seconds = retry_after or "20"
            self.headers.setdefault("retry-after", seconds)
            self.headers.setdefault("retry-after-ms", str(int(float(seconds) * 1000)))
            self.headers.setdefault("x-ratelimit-limit-requests", "3")
            self.headers.setdefault("x-ratelimit-remaining-requests", "0")
        super().__init__(self.message)

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> OpenAIError:
    return OpenAIError(status, message, "invalid_request_error", code, param)


# --------------------------------------------------------------------------- request checks

CHAT_PARAMS = set(
    [
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_completion_tokens",
        "max_tokens",
        "temperature",
        "top_p",
        "n",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "logprobs",
        "top_logprobs",
        "logit_bias",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "functions",
        "function_call",
        "modalities",
        "audio",
        "prediction",
        "user",
        "safety_identifier",
        "metadata",
        "store",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "verbosity",
        "web_search_options",
    ]
)
ROLES = ("system", "assistant", "user", "function", "tool", "developer")
PART_TYPES = {"user": {"text", "image_url", "input_audio", "file"}, "assistant": {"text", "refusal"}}


def _type_error(param: str, expected: str, value: Any) -> OpenAIError:
    got = {
        str: "a string",
        list: "an array",
        dict: "an object",
        bool: "a boolean",
        int: "an integer",
        float: "a decimal",
        type(None): "null",
    }.get(type(value), "a value")
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param, "invalid_type"
    )


def _check_part(part: Any, param: str, role: str) -> None:
    if not isinstance(part, dict):
        raise _type_error(param, "an object", part)
    kind = part.get("type")
    if kind not in PART_TYPES[role]:
        allowed = "', '".join(sorted(PART_TYPES[role]))
        raise bad_request(
            f"Invalid value: '{kind}'. Supported values are: '{allowed}'.", f"{param}.type", "invalid_value"
        )
    if kind == "image_url":
        url = str((part.get("image_url") or {}).get("url", ""))
        if not (url.startswith(("http://", "https://")) or re.match(r"data:image/[\w.+-]+;base64,", url)):
            raise bad_request(
                f"Invalid '{param}.image_url.url'. Expected a valid URL, or a base64-encoded data URL "
                "with an image MIME type.",
                f"{param}.image_url.url",
                "invalid_value",
            )
    if kind == "input_audio" and (part.get("input_audio") or {}).get("format") not in ("wav", "mp3"):
        raise bad_request(
            "Invalid value: format. Supported values are: 'wav' and 'mp3'.",
            f"{param}.input_audio.format",
            "invalid_value",
        )


def _check_message(m: Any, i: int) -> None:
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise _type_error(param, "an object", m)
    role = m.get("role")
    if role not in ROLES:
        raise bad_request(
            f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
            "'function', 'tool', and 'developer'.",
            f"{param}.role",
            "invalid_value",
        )
    content = m.get("content")
    if role in PART_TYPES and isinstance(content, list):
        for j, part in enumerate(content):
            _check_part(part, f"{param}.content[{j}]", role)
    elif (
        not isinstance(content, str)
        and not (role == "assistant" and content is None)
        and not (isinstance(content, list) and role in ("system", "developer", "tool"))
    ):
        raise _type_error(f"{param}.content", "one of a string or array of objects", content)
    for k, call in enumerate(m.get("tool_calls") or []):
        arguments = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
        if not isinstance(arguments, str):
            raise _type_error(f"{param}.tool_calls[{k}].function.arguments", "a string", arguments)


def _check_tool_pairing(messages: list[dict]) -> None:
    """Tool messages answer the calls of the assistant message right before them, all of them."""
    open_ids: list[str] = []
    opened_at = -1
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            if m.get("tool_call_id") not in open_ids:
                raise bad_request(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            open_ids.remove(m["tool_call_id"])
            continue
        if open_ids:
            break
        open_ids = [c.get("id") for c in m.get("tool_calls") or []] if m["role"] == "assistant" else []
        opened_at = i
    if open_ids:
        raise bad_request(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: "
            f"{', '.join(open_ids)}",
            f"messages.[{opened_at}].role",
        )


def check_chat(raw: dict, model: dict, strict: bool) -> None:
    if strict:
        unknown = next((k for k in raw if k not in CHAT_PARAMS), None)
        if unknown:
            raise bad_request(f"Unrecognized request argument supplied: {unknown}")
    if "messages" not in raw:
        raise bad_request("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    messages = raw["messages"]
    if not isinstance(messages, list):
        raise _type_error("messages", "an array", messages)
    if not messages:
        raise bad_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "messages",
            "empty_array",
        )
    for i, m in enumerate(messages):
        _check_message(m, i)
    _check_tool_pairing(messages)
    if raw.get("stream_options") is not None and not raw.get("stream"):
        raise bad_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    if raw.get("tool_choice") not in (None, "none", "auto") and not raw.get("tools"):
        raise bad_request(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice"
        )
    if raw.get("max_tokens") is not None and model["id"].startswith("o"):
        raise bad_request(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "max_tokens",
            "unsupported_parameter",
        )
    fmt = raw.get("response_format") or {}
    if fmt.get("type") == "json_schema" and not (fmt.get("json_schema") or {}).get("name"):
        raise bad_request(
            "Missing required parameter: 'response_format.json_schema.name'.",
            "response_format.json_schema.name",
            "missing_required_parameter",
        )
    if fmt.get("type") == "json_object" and not any("json" in text_of(m.get("content")).lower() for m in messages):
        raise bad_request(
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            "messages",
        )


def embedding_inputs(raw: dict) -> list[str]:
    """str | str[] | int[] | int[][] (openai.md §6); token arrays are embedded by their ids."""
    if "input" not in raw:
        raise bad_request("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    value = raw["input"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise bad_request(INVALID_INPUT)
    if all(isinstance(v, int) for v in value):
        value = [value]
    if len(value) > 2048:
        raise bad_request("Invalid 'input': maximum number of inputs is 2048.", "input")
    texts = []
    for item in value:
        if isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            texts.append(" ".join(map(str, item)))
        elif isinstance(item, str) and item:
            texts.append(item)
        else:
            raise bad_request(INVALID_INPUT)
    return texts
