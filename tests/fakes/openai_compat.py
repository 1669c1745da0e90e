"""A faithful fake of the OpenAI API (chat completions, embeddings, models) for tests and demos.

Built like tests/fakes/gemini.py: one request-handling core (`FakeOpenAI.respond`: status,
headers, async iterator of body bytes) served two ways:

- in process: ``httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))`` (also as the
  ``http_client`` of ``openai.AsyncOpenAI(base_url="http://fake/v1", ...)``);
- as a real server: ``python -m tests.fakes.openai_compat --port 8002`` runs ``fake.asgi`` under
  daphne. ``POST /_fake/script`` (JSON: kind, on, kwargs), ``POST /_fake/reset`` and
  ``GET /_fake/requests`` script and inspect a served fake over HTTP.

Wire facts: /work/shared/reference/openai.md §4–§9. Streams follow the §5 canonical sequence (role
chunk, content chunks, tool-call chunks, an empty-delta finish chunk, the usage chunk only when
``stream_options.include_usage`` is true, ``data: [DONE]``). Unscripted replies are deterministic
(see `default_generation`); `fake.script()` queues one-shot behaviours, including the quirks of
other OpenAI-compatible servers (openai.md §11). Every request is recorded in `fake.requests`:
method, path, query, headers (lower-cased), body (bytes), json (parsed or None), model, endpoint
("chat", "embeddings", "models", "model"), completed (body fully sent).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import re
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qsl

import httpx

from tests.fakes.gemini import (
    Reply, _chunks, _disconnected, _drop_connection_on_broken_stream, _HttpxStream, _maybe_json,
)
from tests.fakes.gemini_replies import embedding_values, tokens, value_for_schema

DEFAULT_API_KEY = "test-openai-key"
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
FINGERPRINT = "fp_fake0001"
CONTENT_KINDS = {"text", "tool_calls", "reasoning", "no_usage", "finish_on_content", "no_role"}
TRANSPORT_KINDS = {"error", "break_midstream", "error_midstream", "slow", "raw"}
SCRIPT_KINDS = CONTENT_KINDS | TRANSPORT_KINDS
SCRIPT_TARGETS = {"chat", "embeddings", "models", "any"}
FLAGS = ("no_usage", "finish_on_content", "no_role")  # quirks any content kind may combine
_ERROR_KW = ("status", "message", "type", "code", "param", "headers", "retry_after")
# The resolved snapshot OpenAI names in replies (clients asked for the alias).
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4.1": "gpt-4.1-2025-04-14"}
EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
CHAT_PARAMS = set("""model messages stream stream_options max_completion_tokens max_tokens temperature top_p
    n stop presence_penalty frequency_penalty seed logprobs top_logprobs logit_bias response_format tools
    tool_choice parallel_tool_calls reasoning_effort functions function_call modalities audio prediction
    user safety_identifier metadata store service_tier prompt_cache_key prompt_cache_retention verbosity
    web_search_options""".split())
ROLES = ("system", "assistant", "user", "function", "tool", "developer")
PART_TYPES = {"user": {"text", "image_url", "input_audio", "file"}, "assistant": {"text", "refusal"}}

NO_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header "
          "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
          "username) if you're accessing the API from your browser and are prompted for a username. You "
          "can obtain an API key from https://platform.openai.com/account/api-keys.")
BAD_JSON = ("We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
            "help center at help.openai.com.)")
INVALID_INPUT = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
DEFAULT_ERRORS = {  # status -> (message, type, code)
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided. You can find your API key at "
          "https://platform.openai.com/account/api-keys.", "invalid_request_error", "invalid_api_key"),
    403: ("Project does not have access to this model.", "invalid_request_error", "model_not_found"),
    404: ("The model `gpt-5` does not exist or you do not have access to it.", "invalid_request_error",
          "model_not_found"),
    429: ("Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): "
          "Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
          "https://platform.openai.com/account/rate-limits to learn more.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error processing your request. Sorry about that! You can retry your request, "
          "or contact us through our help center at help.openai.com if you keep seeing this error.",
          "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def default_models() -> list[dict]:
    """GET /v1/models entries (openai.md §7)."""
    rows = [("gpt-4o-mini", 1721172741, "system"), ("gpt-4.1", 1744316542, "system"),
            ("o4-mini", 1744225351, "system"), ("text-embedding-3-small", 1705948997, "system"),
            ("text-embedding-3-large", 1705953180, "system"), ("text-embedding-ada-002", 1671217299, "openai-internal")]
    return [{"id": i, "object": "model", "created": c, "owned_by": o} for i, c, o in rows]


class OpenAIError(Exception):
    """An OpenAI error reply: HTTP status and {"error": {message, type, param, code}}."""

    def __init__(self, status: int, message: str | None = None, type: str | None = None,
                 code: str | None = None, param: str | None = None, headers: dict | None = None,
                 retry_after: str | None = None) -> None:
        default = DEFAULT_ERRORS.get(status, (f"Error {status}", "server_error" if status >= 500 else
                                              "invalid_request_error", None))
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


def _bad(message: str, param: str | None = None, code: str | None = None, status: int = 400) -> OpenAIError:
    return OpenAIError(status, message, "invalid_request_error", code, param)


# --------------------------------------------------------------------------- answers

@dataclass
class Answer:
    """One choice. `chunks` optionally fixes how the text streams."""

    text: str = ""
    reasoning: str = ""
    calls: list[dict] = field(default_factory=list)  # {"id", "name", "arguments": JSON string}
    finish: str = "stop"
    chunks: list[str] | None = None
    logprobs: int | None = None  # top_logprobs count when logprobs were asked for


@dataclass
class Generation:
    choices: list[Answer]
    prompt_tokens: int
    reasoning_field: str = "reasoning_content"
    reasoning_tokens: int = 0

    def completion_tokens(self) -> int:
        visible = sum(len(a.text) + sum(len(c["arguments"]) + len(c["name"]) for c in a.calls)
                      for a in self.choices)
        return tokens(visible) + self.reasoning_tokens


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or p.get("refusal") or "" for p in content or [] if isinstance(p, dict))


def _prompt_tokens(messages: list[dict]) -> int:
    chars, images = 0, 0
    for m in messages:
        chars += len(_text_of(m.get("content")))
        chars += sum(len(str((c.get("function") or {}).get("arguments", ""))) for c in m.get("tool_calls") or [])
        images += sum(1 for p in m.get("content") or [] if isinstance(p, dict) and p.get("type") != "text")
    return tokens(chars) + 85 * images + 3 * len(messages)


def _call_id() -> str:
    return "call_" + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")[:24]


def _pick_tool(req: dict, text: str) -> dict | None:
    """The function the default reply calls, if any (tool_choice, or user text "CALL: name")."""
    tools = [t.get("function") or {} for t in req.get("tools") or []]
    choice = req.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    names, required = [], choice == "required"
    if isinstance(choice, dict) and choice.get("type") == "function":
        names, required = [(choice.get("function") or {}).get("name")], True
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or []]
        required = allowed.get("mode") == "required"
    if not (required or text.startswith("CALL:")):
        return None
    usable = [t for t in tools if not names or t.get("name") in names] or tools
    wanted = text[len("CALL:"):].strip().split(" ")[0] if text.startswith("CALL:") else ""
    return next((t for t in usable if t.get("name") == wanted), usable[0])


def _limit(text: str, req: dict) -> tuple[str, str]:
    stops = req.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        if stop and stop in text:
            text = text[:text.index(stop)]
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    if limit is not None and tokens(len(text)) > int(limit):
        return text[:int(limit) * 4], "length"
    return text, "stop"


def default_generation(req: dict) -> Generation:
    """What the fake says when nothing is scripted. Deterministic apart from ids:

    - last message(s) tool results -> "Tool said: " + JSON list of their contents;
    - tool_choice required / a named function / allowed_tools required, or last user text starting
      "CALL:" (optionally "CALL: name") -> one call to that/the first usable function, arguments
      built from its schema, finish_reason tool_calls;
    - response_format json_object / json_schema -> a JSON object (from the schema when given);
    - else "Hello from fake OpenAI: " + last user text (first 200 chars).
    Tokens are ceil(chars / 4); `stop` and max_(completion_)tokens (-> length) apply to text;
    n > 1 suffixes " (choice N)"; logprobs adds per-word logprobs.
    """
    messages = req["messages"]
    trailing = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        trailing.insert(0, _text_of(m.get("content")))
    user_text = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    function = None if trailing else _pick_tool(req, user_text)
    fmt = req.get("response_format") or {}
    choices = []
    for index in range(int(req.get("n") or 1)):
        answer = Answer(logprobs=int(req.get("top_logprobs") or 0) if req.get("logprobs") else None)
        if function is not None:
            args = value_for_schema(function.get("parameters") or {"type": "object"})
            answer.calls = [{"id": _call_id(), "name": function.get("name", ""),
                             "arguments": json.dumps(args if isinstance(args, dict) else {})}]
            answer.finish = "tool_calls"
        else:
            if trailing:
                reply = "Tool said: " + json.dumps(trailing)
            elif fmt.get("type") == "json_schema":
                reply = json.dumps(value_for_schema((fmt.get("json_schema") or {}).get("schema") or {}))
            elif fmt.get("type") == "json_object":
                reply = json.dumps({"text": user_text})
            else:
                reply = "Hello from fake OpenAI: " + user_text[:200]
            answer.text, answer.finish = _limit(reply + (f" (choice {index + 1})" if index else ""), req)
        choices.append(answer)
    return Generation(choices, _prompt_tokens(messages))


def scripted_generation(kind: str, kw: dict, req: dict) -> Generation:
    base = default_generation(req)
    text, chunks = kw.get("text"), kw.get("chunks")
    if chunks is not None:
        text = "".join(chunks)
    if kind == "tool_calls":
        calls = []
        for call in kw["calls"]:
            if isinstance(call, dict):
                call = (call["name"], call.get("args"), call.get("id"))
            name, args, call_id = (*call, None)[:3]
            arguments = args if isinstance(args, str) else json.dumps(args or {})
            calls.append({"id": call_id or _call_id(), "name": name, "arguments": arguments})
        answer = Answer(text or "", calls=calls, finish=kw.get("finish_reason", "tool_calls"), chunks=chunks)
        return Generation([answer], base.prompt_tokens)
    if kind == "reasoning":
        thought = kw.get("reasoning", "Let me think this through step by step.")
        answer = Answer(text if text is not None else "Hello from fake OpenAI: thought about it.",
                        reasoning=thought, finish=kw.get("finish_reason", "stop"), chunks=chunks)
        return Generation([answer], base.prompt_tokens, kw.get("field", "reasoning_content"),
                          kw.get("reasoning_tokens") or tokens(len(thought)))
    if text is not None:  # text, and any other kind given text= / chunks=
        return Generation([Answer(text, finish=kw.get("finish_reason", "stop"), chunks=chunks)], base.prompt_tokens)
    return base


# --------------------------------------------------------------------------- wire shapes (§4, §5)

def _token(text: str, logprob: float) -> dict:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def logprobs_json(text: str, top: int) -> dict:
    words = re.findall(r"\S+\s*", text) or ([text] if text else [])
    content = []
    for i, word in enumerate(words):
        lp = -0.05 * (i % 4 + 1)
        content.append({**_token(word, lp), "top_logprobs": [_token(word, lp)] + [
            _token(f"alt{n}", lp - n) for n in range(1, top)] if top else []})
    return {"content": content, "refusal": None}


def usage_json(gen: Generation, completion: int | None = None) -> dict:
    completion = gen.completion_tokens() if completion is None else completion
    return {
        "prompt_tokens": gen.prompt_tokens, "completion_tokens": completion,
        "total_tokens": gen.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": gen.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _tool_call_json(call: dict) -> dict:
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def response_json(gen: Generation, model: str, completion_id: str, created: int, usage: bool = True) -> dict:
    choices = []
    for index, answer in enumerate(gen.choices):
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or (None if answer.calls else ""),
                                   "refusal": None, "annotations": []}
        if answer.reasoning:
            message[gen.reasoning_field] = answer.reasoning
        if answer.calls:
            message["tool_calls"] = [_tool_call_json(c) for c in answer.calls]
        logprobs = logprobs_json(answer.text, answer.logprobs) if answer.logprobs is not None else None
        choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": answer.finish})
    out = {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
           "choices": choices}
    if usage:
        out["usage"] = usage_json(gen)
    out.update({"service_tier": "default", "system_fingerprint": FINGERPRINT})
    return out


def _split(text: str, chunks: list[str] | None, size: int) -> list[str]:
    if chunks is not None:
        return [c for c in chunks if c]
    words = re.findall(r"\S+\s*", text) or ([text] if text else [])
    return ["".join(words[i:i + size]) for i in range(0, len(words), max(size, 1))]


def _fragments(arguments: str, count: int) -> list[str]:
    """Split an argument string into `count` fragments (so clients must concatenate)."""
    if count <= 1 or len(arguments) < 2:
        return [arguments]
    step = math.ceil(len(arguments) / count)
    return [arguments[i:i + step] for i in range(0, len(arguments), step)]


def choice_steps(answer: Answer, reasoning_field: str, words: int, fragments: int,
                 flags: dict) -> list[tuple[dict, str | None, dict | None]]:
    """(delta, finish_reason, logprobs) for one choice, in the §5 canonical order."""
    steps: list[tuple[dict, str | None, dict | None]] = []
    if not flags.get("no_role"):
        steps.append(({"role": "assistant", "content": "", "refusal": None}, None, None))
    for piece in _split(answer.reasoning, None, words):
        steps.append(({"content": None, reasoning_field: piece}, None, None))  # DeepSeek's shape
    for piece in _split(answer.text, answer.chunks, words):
        logprobs = logprobs_json(piece, answer.logprobs) if answer.logprobs is not None else None
        steps.append(({"content": piece}, None, logprobs))
    for k, call in enumerate(answer.calls):
        head = {"index": k, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        steps.append(({"tool_calls": [head]}, None, None))
        for fragment in _fragments(call["arguments"], fragments):
            steps.append(({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]}, None, None))
    if flags.get("finish_on_content") and steps:
        delta, _, logprobs = steps[-1]
        steps[-1] = (delta, answer.finish, logprobs)
    else:
        steps.append(({}, answer.finish, None))
    return steps


def stream_chunks(gen: Generation, model: str, completion_id: str, created: int, include_usage: bool,
                  words: int = 1, fragments: int = 3, flags: dict | None = None) -> list[dict]:
    """Every chunk of a stream; choices interleave step by step when n > 1."""
    flags = flags or {}
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": FINGERPRINT}
    tail = {"usage": None} if include_usage else {}
    per_choice = [choice_steps(a, gen.reasoning_field, words, fragments, flags) for a in gen.choices]
    chunks = []
    for step in range(max(len(s) for s in per_choice)):
        for index, steps in enumerate(per_choice):
            if step < len(steps):
                delta, finish, logprobs = steps[step]
                choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
                chunks.append({**head, "choices": [choice], **tail})
    if include_usage and not flags.get("no_usage"):
        chunks.append({**head, "choices": [], "usage": usage_json(gen)})
    return chunks


def _sse(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()


# --------------------------------------------------------------------------- request checks

def _type_error(param: str, expected: str, value: Any) -> OpenAIError:
    got = {str: "a string", list: "an array", dict: "an object", bool: "a boolean", int: "an integer",
           float: "a decimal", type(None): "null"}.get(type(value), "a value")
    return _bad(f"Invalid type for '{param}': expected {expected}, but got {got} instead.", param, "invalid_type")


def _check_part(part: Any, param: str, role: str) -> None:
    if not isinstance(part, dict):
        raise _type_error(param, "an object", part)
    kind = part.get("type")
    if kind not in PART_TYPES[role]:
        allowed = "', '".join(sorted(PART_TYPES[role]))
        raise _bad(f"Invalid value: '{kind}'. Supported values are: '{allowed}'.", f"{param}.type", "invalid_value")
    if kind == "image_url":
        url = str((part.get("image_url") or {}).get("url", ""))
        if not (url.startswith(("http://", "https://")) or re.match(r"data:image/[\w.+-]+;base64,", url)):
            raise _bad(f"Invalid '{param}.image_url.url'. Expected a valid URL, or a base64-encoded data URL "
                       "with an image MIME type.", f"{param}.image_url.url", "invalid_value")
    if kind == "input_audio" and (part.get("input_audio") or {}).get("format") not in ("wav", "mp3"):
        raise _bad("Invalid value: format. Supported values are: 'wav' and 'mp3'.",
                   f"{param}.input_audio.format", "invalid_value")


def _check_message(m: Any, i: int) -> None:
    param = f"messages[{i}]"
    if not isinstance(m, dict):
        raise _type_error(param, "an object", m)
    role = m.get("role")
    if role not in ROLES:
        raise _bad(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                   "'function', 'tool', and 'developer'.", f"{param}.role", "invalid_value")
    content = m.get("content")
    if role in PART_TYPES and isinstance(content, list):
        for j, part in enumerate(content):
            _check_part(part, f"{param}.content[{j}]", role)
    elif not isinstance(content, str) and not (role == "assistant" and content is None) and \
            not (isinstance(content, list) and role in ("system", "developer", "tool")):
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
                raise _bad("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                           "message with 'tool_calls'.", f"messages.[{i}].role")
            open_ids.remove(m["tool_call_id"])
            continue
        if open_ids:
            break
        open_ids = [c.get("id") for c in m.get("tool_calls") or []] if m["role"] == "assistant" else []
        opened_at = i
    if open_ids:
        raise _bad("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                   f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                   f"{', '.join(open_ids)}", f"messages.[{opened_at}].role")


def _check_chat(raw: dict, model: dict, strict: bool) -> None:
    if strict:
        unknown = next((k for k in raw if k not in CHAT_PARAMS), None)
        if unknown:
            raise _bad(f"Unrecognized request argument supplied: {unknown}")
    if "messages" not in raw:
        raise _bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    messages = raw["messages"]
    if not isinstance(messages, list):
        raise _type_error("messages", "an array", messages)
    if not messages:
        raise _bad("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
                   "empty array instead.", "messages", "empty_array")
    for i, m in enumerate(messages):
        _check_message(m, i)
    _check_tool_pairing(messages)
    if raw.get("stream_options") is not None and not raw.get("stream"):
        raise _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    if raw.get("tool_choice") not in (None, "none", "auto") and not raw.get("tools"):
        raise _bad("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                   "tool_choice")
    if raw.get("max_tokens") is not None and model["id"].startswith("o"):
        raise _bad("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                   "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    fmt = raw.get("response_format") or {}
    if fmt.get("type") == "json_schema" and not (fmt.get("json_schema") or {}).get("name"):
        raise _bad("Missing required parameter: 'response_format.json_schema.name'.",
                   "response_format.json_schema.name", "missing_required_parameter")
    if fmt.get("type") == "json_object" and not any("json" in _text_of(m.get("content")).lower() for m in messages):
        raise _bad("'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                   "'json_object'.", "messages")


# --------------------------------------------------------------------------- the fake

class FakeOpenAI:
    """In-memory OpenAI API. See the module docstring and `script` for the knobs."""

    def __init__(self, api_key: str | None = DEFAULT_API_KEY, *, chunk_delay: float = 0.0,
                 words_per_chunk: int = 1, embedding_dims: int | None = None, strict: bool = False,
                 models: list[dict] | None = None, keep_requests: int | None = None) -> None:
        self.api_key = api_key                  # None: no key needed (like a local Ollama / vLLM)
        self.chunk_delay = chunk_delay          # seconds between streamed chunks
        self.words_per_chunk = words_per_chunk  # stream granularity of text
        self.embedding_dims = embedding_dims    # vector size override (tests keep vectors short)
        self.strict = strict                    # 400 on unknown chat parameters, like api.openai.com
        self.models = default_models() if models is None else models
        self.keep_requests = keep_requests
        self.requests: list[dict] = []
        self.scripts: list[dict] = []

    # ----------------------------------------------------------------- test-facing helpers

    def script(self, kind: str, *, on: str = "chat", **kw: Any) -> FakeOpenAI:
        """Queue a one-shot behaviour for the next `on` call: chat, embeddings, models or any (FIFO).

        Every kind takes ``delay`` (seconds before the status line) and ``between`` (seconds
        between streamed chunks); content kinds also take the quirk flags ``no_usage``,
        ``finish_on_content`` and ``no_role`` (True), and text=/chunks= to fix the answer.

        - ``text``: text="...", or chunks=[...] (exact stream split); finish_reason="stop"
        - ``tool_calls``: calls=[(name, args) | (name, args, id) | {"name", "args", "id"}] (args a
          dict or a raw string, e.g. invalid JSON), text=None, fragments=3 (argument pieces per
          call in a stream; 1 = whole), finish_reason="tool_calls"
        - ``reasoning``: reasoning="...", text=None, field="reasoning_content" | "reasoning",
          reasoning_tokens=None (DeepSeek-style visible reasoning deltas first)
        - ``no_usage``: the server ignores stream_options: no usage chunk, no usage in replies
        - ``finish_on_content``: finish_reason rides on the last content chunk; no empty-delta chunk
        - ``no_role``: no role chunk first
        - ``error``: status=500, message=None, type=None, code=None, param=None, headers=None,
          retry_after=None (429 adds retry-after "20", retry-after-ms and x-ratelimit-* headers)
        - ``break_midstream``: after=1 chunks, error="read" | "protocol" (httpx error raised)
        - ``error_midstream``: after=1 chunks, then an in-band error event (error kwargs as above)
        - ``slow``: delay=, between= (default reply, or text=/chunks=)
        - ``raw``: status=200, body=bytes|str|dict|list-of-frames, content_type=None, headers={}
        """
        if kind not in SCRIPT_KINDS:
            raise ValueError(f"unknown script kind {kind!r}; choose from {sorted(SCRIPT_KINDS)}")
        if on not in SCRIPT_TARGETS:
            raise ValueError(f"unknown script target {on!r}; choose from {sorted(SCRIPT_TARGETS)}")
        self.scripts.append({"kind": kind, "on": on, "kw": kw})
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.scripts.clear()

    @property
    def last_request(self) -> dict:
        return self.requests[-1]

    def requests_to(self, endpoint: str) -> list[dict]:
        return [r for r in self.requests if r["endpoint"] == endpoint]

    # ----------------------------------------------------------------- adapters

    async def handler(self, request: httpx.Request) -> httpx.Response:
        """`httpx.MockTransport(fake.handler)`: streamed bodies stay incremental."""
        reply = await self.respond(request.method, request.url.path, dict(request.url.params),
                                   dict(request.headers), await request.aread())
        return httpx.Response(reply.status, headers=reply.headers, stream=_HttpxStream(reply.body))

    async def asgi(self, scope: dict, receive: Callable, send: Callable) -> None:
        """ASGI3 app; a broken stream raises out of it so the server drops the connection."""
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        reply = await self.respond(scope["method"], scope["path"], query, headers, body)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]})
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            async for chunk in reply.body:
                if gone.done():  # the client left: stop generating
                    await reply.body.aclose()  # type: ignore[attr-defined]
                    return
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    # ----------------------------------------------------------------- the core

    async def respond(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                      body: bytes) -> Reply:
        """Handle one HTTP request; records it first, then routes it."""
        if path.startswith("/_fake/"):
            return self._control(method.upper(), path, body)
        record: dict[str, Any] = {
            "method": method.upper(), "path": path, "query": dict(query),
            "headers": {k.lower(): v for k, v in headers.items()}, "body": body,
            "json": _maybe_json(body), "model": None, "endpoint": None, "completed": False,
        }
        self.requests.append(record)
        if self.keep_requests is not None and len(self.requests) > self.keep_requests:
            del self.requests[0]
        try:
            reply = await self._route(record)
        except OpenAIError as error:
            reply = _error_reply(error)
        except _RawReply as raw:
            reply = raw.reply()
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            record["fake_error"] = repr(error)  # a body of the wrong shape: OpenAI answers 400
            reply = _error_reply(_bad(f"Invalid request: {error}"))
        reply.body = _track(record, reply.body)
        return reply

    async def _route(self, record: dict) -> Reply:
        self._authenticate(record["headers"])
        method, path = record["method"], record["path"]
        if method == "POST" and path == "/v1/chat/completions":
            record["endpoint"] = "chat"
            return await self._chat(record, self._body(record))
        if method == "POST" and path == "/v1/embeddings":
            record["endpoint"] = "embeddings"
            return await self._embeddings(record, self._body(record))
        if method == "GET" and path == "/v1/models":
            record["endpoint"] = "models"
            await self._take_script("models")
            return _json_reply({"object": "list", "data": self.models})
        if method == "GET" and path.startswith("/v1/models/"):
            record["endpoint"] = "model"
            record["model"] = model_id = path[len("/v1/models/"):]
            await self._take_script("models")
            model = self._find_model(model_id)
            if model is None:
                raise OpenAIError(404, f"The model '{model_id}' does not exist", "invalid_request_error",
                                  "model_not_found", "model")
            return _json_reply(model)
        raise _bad(f"Invalid URL ({method} {path})", status=404)

    def _authenticate(self, headers: dict[str, str]) -> None:
        if self.api_key is None:
            return
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise OpenAIError(401, NO_KEY, "invalid_request_error", None)
        if key.strip() != self.api_key:
            shown = key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "****"
            raise OpenAIError(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.",
                              "invalid_request_error", "invalid_api_key")

    @staticmethod
    def _body(record: dict) -> dict:
        raw = record["json"]
        if not isinstance(raw, dict):
            raise _bad(BAD_JSON)
        model = raw.get("model")
        if not model:
            raise _bad("you must provide a model parameter")
        record["model"] = model
        return raw

    def _find_model(self, model_id: str) -> dict | None:
        return next((m for m in self.models if m["id"] == model_id), None)

    def _model_for(self, model_id: Any, embeddings: bool) -> dict:
        model = self._find_model(model_id)
        if model is None:
            raise OpenAIError(404, f"The model `{model_id}` does not exist or you do not have access to it.",
                              "invalid_request_error", "model_not_found")
        if model["id"].startswith("text-embedding") != embeddings:
            if embeddings:
                raise _bad(f"This model does not support embeddings: {model_id}", "model")
            raise _bad("This is not a chat model and thus not supported in the v1/chat/completions endpoint. "
                       "Did you mean to use v1/completions?", "model", status=404)
        return model

    async def _take_script(self, target: str) -> dict | None:
        """Pop the first script for this endpoint; apply its delay; raise error/raw kinds."""
        script = next((s for s in self.scripts if s["on"] in (target, "any")), None)
        if script is None:
            return None
        self.scripts.remove(script)
        kw = script["kw"]
        await asyncio.sleep(kw.get("delay", 0))
        if script["kind"] == "error":
            raise OpenAIError(**{"status": 500, **{k: v for k, v in kw.items() if k in _ERROR_KW}})
        if script["kind"] == "raw":
            raise _RawReply(kw, kw.get("between", self.chunk_delay))
        return script

    # ----------------------------------------------------------------- operations

    async def _chat(self, record: dict, raw: dict) -> Reply:
        model = self._model_for(raw["model"], embeddings=False)
        _check_chat(raw, model, self.strict)
        script = await self._take_script("chat")
        kind, kw = (script["kind"], script["kw"]) if script else (None, {})
        gen = scripted_generation(kind, kw, raw) if kind else default_generation(raw)
        flags = {flag: bool(kw.get(flag) or kind == flag) for flag in FLAGS}
        name = SNAPSHOTS.get(model["id"], model["id"])
        completion_id, created = "chatcmpl-" + secrets.token_urlsafe(21).replace("-", "x")[:29], int(time.time())
        between = kw.get("between", self.chunk_delay)
        error = OpenAIError(**{"status": 500, **{k: v for k, v in kw.items() if k in _ERROR_KW}})
        if not raw.get("stream"):
            if kind == "error_midstream":
                raise error
            payload = _dump(response_json(gen, name, completion_id, created, usage=not flags["no_usage"]))
            if kind == "break_midstream":
                return Reply(200, _headers(JSON_TYPE, len(payload)),
                             _chunks([payload[:len(payload) // 2]], broken=kw.get("error", "read")))
            return Reply(200, _headers(JSON_TYPE, len(payload)), _chunks([payload]))
        include_usage = bool((raw.get("stream_options") or {}).get("include_usage"))
        chunks = stream_chunks(gen, name, completion_id, created, include_usage, self.words_per_chunk,
                               int(kw.get("fragments", 3)), flags)
        frames = [_sse(c) for c in chunks]
        broken = None
        if kind in ("break_midstream", "error_midstream"):
            frames = frames[:kw.get("after", 1)]
            if kind == "error_midstream":
                frames.append(_sse(error.body()))
            else:
                broken = kw.get("error", "read")
        else:
            frames.append(_sse("[DONE]"))
        return Reply(200, _headers(SSE_TYPE), _chunks(frames, between, broken))

    async def _embeddings(self, record: dict, raw: dict) -> Reply:
        model = self._model_for(raw["model"], embeddings=True)
        texts = _embedding_inputs(raw)
        encoding = raw.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _bad(f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                       "encoding_format", "invalid_value")
        dims = raw.get("dimensions")
        if dims is not None and model["id"] == "text-embedding-ada-002":
            raise _bad("This model does not support specifying dimensions.")
        if dims is not None and not (isinstance(dims, int) and 1 <= dims <= EMBEDDING_DIMS[model["id"]]):
            raise _bad(f"Invalid value for 'dimensions' = {dims}. Must be between 1 and "
                       f"{EMBEDDING_DIMS[model['id']]}.", "dimensions")
        script = await self._take_script("embeddings")
        size = dims or self.embedding_dims or EMBEDDING_DIMS[model["id"]]
        data = [{"object": "embedding", "index": i, "embedding": _encode(_unit_vector(t, size), encoding)}
                for i, t in enumerate(texts)]
        prompt = sum(tokens(len(t)) for t in texts)
        payload: dict[str, Any] = {"object": "list", "data": data, "model": model["id"]}
        kind = script["kind"] if script else None
        if kind != "no_usage" and not (script and script["kw"].get("no_usage")):
            payload["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
        return _json_reply(payload)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        """Test-only endpoints so a served fake can be scripted and inspected over HTTP."""
        if method == "POST" and path == "/_fake/script":
            kw = dict(_maybe_json(body) or {})
            try:
                self.script(kw.pop("kind", ""), **kw)
            except (TypeError, ValueError) as error:
                return _json_reply({"error": str(error)}, 400)
            return _json_reply({"queued": len(self.scripts)})
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return _json_reply({})
        if method == "GET" and path == "/_fake/requests":
            return _json_reply([{k: v for k, v in r.items() if k != "body"} for r in self.requests])
        return _json_reply({"error": "unknown control endpoint"}, 404)


# --------------------------------------------------------------------------- helpers

def _embedding_inputs(raw: dict) -> list[str]:
    """str | str[] | int[] | int[][] (openai.md §6); token arrays are embedded by their ids."""
    if "input" not in raw:
        raise _bad("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    value = raw["input"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _bad(INVALID_INPUT)
    if all(isinstance(v, int) for v in value):
        value = [value]
    if len(value) > 2048:
        raise _bad("Invalid 'input': maximum number of inputs is 2048.", "input")
    texts = []
    for item in value:
        if isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            texts.append(" ".join(map(str, item)))
        elif isinstance(item, str) and item:
            texts.append(item)
        else:
            raise _bad(INVALID_INPUT)
    return texts


def _unit_vector(text: str, dims: int) -> list[float]:
    """Deterministic, L2-normalised like OpenAI's embeddings."""
    values = embedding_values(text, dims)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, what the SDKs decode (openai.md §6)
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def _dump(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def _headers(content_type: str, length: int | None = None, extra: dict | None = None) -> list[tuple[str, str]]:
    headers = [("content-type", content_type), ("x-request-id", "req_" + secrets.token_hex(16))]
    if length is not None:
        headers.append(("content-length", str(length)))
    return headers + list((extra or {}).items())


def _json_reply(payload: Any, status: int = 200) -> Reply:
    body = _dump(payload)
    return Reply(status, _headers(JSON_TYPE, len(body)), _chunks([body]))


def _error_reply(error: OpenAIError) -> Reply:
    body = _dump(error.body())
    return Reply(error.status, _headers(JSON_TYPE, len(body), error.headers), _chunks([body]))


async def _track(record: dict, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:
        yield chunk
    record["completed"] = True


class _RawReply(Exception):
    """Carries a `raw` script out of the routing code: the reply bypasses everything."""

    def __init__(self, kw: dict, between: float) -> None:
        super().__init__("raw reply")
        self.kw, self.between = kw, between

    def reply(self) -> Reply:
        body = self.kw.get("body", b"")
        frames = body if isinstance(body, list) and all(isinstance(b, (str, bytes)) for b in body) else [body]
        frames = [f.encode() if isinstance(f, str) else f if isinstance(f, bytes) else _dump(f) for f in frames]
        content_type = self.kw.get("content_type") or JSON_TYPE
        headers = [("content-type", content_type), *dict(self.kw.get("headers") or {}).items()]
        return Reply(self.kw.get("status", 200), headers, _chunks(frames, self.between))


# --------------------------------------------------------------------------- standalone server

def __getattr__(name: str) -> Any:
    """`tests.fakes.openai_compat:app` for daphne, configured by FAKE_OPENAI_* env vars on first use."""
    if name != "app":
        raise AttributeError(name)
    fake = FakeOpenAI(os.environ.get("FAKE_OPENAI_API_KEY", DEFAULT_API_KEY) or None,
                      chunk_delay=float(os.environ.get("FAKE_OPENAI_CHUNK_DELAY", "0")),
                      keep_requests=1000)
    globals()["app"] = fake.asgi
    return fake.asgi


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.openai_compat",
                                     description="Serve the fake OpenAI API under daphne.")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--api-key", default=os.environ.get("FAKE_OPENAI_API_KEY", DEFAULT_API_KEY),
                        help='Bearer key to require; "" accepts any request (like a local server)')
    parser.add_argument("--chunk-delay", type=float,
                        default=float(os.environ.get("FAKE_OPENAI_CHUNK_DELAY", "0")))
    args = parser.parse_args(argv)
    os.environ["FAKE_OPENAI_API_KEY"] = args.api_key
    os.environ["FAKE_OPENAI_CHUNK_DELAY"] = str(args.chunk_delay)
    print(f"Fake OpenAI API on http://{args.host}:{args.port}/v1 (Bearer {args.api_key or '<none>'})",
          flush=True)
    from daphne.cli import CommandLineInterface  # imported late: it installs a Twisted reactor

    _drop_connection_on_broken_stream()
    CommandLineInterface().run(["-b", args.host, "-p", str(args.port), "tests.fakes.openai_compat:app"])


if __name__ == "__main__":
    main()
