"""How the fake OpenAI API answers: default and scripted replies, and their wire shapes.

Pure functions, no I/O: `tests.fakes.openai_compat` turns a `Generation` into a chat.completion or
its chunks. Wire facts follow docs/reference/openai.md (section numbers in comments).
"""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_replies import embedding_values, tokens, value_for_schema

FINGERPRINT = "fp_fake0001"
CONTENT_KINDS = {"text", "tool_calls", "reasoning", "no_usage", "finish_on_content", "no_role"}
TRANSPORT_KINDS = {"error", "break_midstream", "error_midstream", "slow", "raw"}
SCRIPT_KINDS = CONTENT_KINDS | TRANSPORT_KINDS
FLAGS = ("no_usage", "finish_on_content", "no_role")  # quirks any content kind may combine

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
        visible = sum(len(a.text) + sum(len(c["arguments"]) + len(c["name"]) for c in a.calls) for a in self.choices)
        return tokens(visible) + self.reasoning_tokens


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or p.get("refusal") or "" for p in content or [] if isinstance(p, dict))


def _prompt_tokens(messages: list[dict]) -> int:
    chars, images = 0, 0
    for m in messages:
        chars += len(text_of(m.get("content")))
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
    wanted = text[len("CALL:") :].strip().split(" ")[0] if text.startswith("CALL:") else ""
    return next((t for t in usable if t.get("name") == wanted), usable[0])


def _limit(text: str, req: dict) -> tuple[str, str]:
    stops = req.get("stop") or []
    for stop in [stops] if isinstance(stops, str) else stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = req.get("max_completion_tokens") or req.get("max_tokens")
    if limit is not None and tokens(len(text)) > int(limit):
        return text[: int(limit) * 4], "length"
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
        trailing.insert(0, text_of(m.get("content")))
    user_text = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    function = None if trailing else _pick_tool(req, user_text)
    fmt = req.get("response_format") or {}
    choices = []
    for index in range(int(req.get("n") or 1)):
        answer = Answer(logprobs=int(req.get("top_logprobs") or 0) if req.get("logprobs") else None)
        if function is not None:
            args = value_for_schema(function.get("parameters") or {"type": "object"})
            answer.calls = [
                {
                    "id": _call_id(),
                    "name": function.get("name", ""),
                    "arguments": json.dumps(args if isinstance(args, dict) else {}),
                }
            ]
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
        answer = Answer(
            text if text is not None else "Hello from fake OpenAI: thought about it.",
            reasoning=thought,
            finish=kw.get("finish_reason", "stop"),
            chunks=chunks,
        )
        return Generation(
            [answer],
            base.prompt_tokens,
            kw.get("field", "reasoning_content"),
            kw.get("reasoning_tokens") or tokens(len(thought)),
        )
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
        content.append(
            {
                **_token(word, lp),
                "top_logprobs": [_token(word, lp)] + [_token(f"alt{n}", lp - n) for n in range(1, top)] if top else [],
            }
        )
    return {"content": content, "refusal": None}


def usage_json(gen: Generation, completion: int | None = None) -> dict:
    completion = gen.completion_tokens() if completion is None else completion
    return {
        "prompt_tokens": gen.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": gen.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": gen.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call_json(call: dict) -> dict:
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}


def response_json(gen: Generation, model: str, completion_id: str, created: int, usage: bool = True) -> dict:
    choices = []
    for index, answer in enumerate(gen.choices):
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text or (None if answer.calls else ""),
            "refusal": None,
            "annotations": [],
        }
        if answer.reasoning:
            message[gen.reasoning_field] = answer.reasoning
        if answer.calls:
            message["tool_calls"] = [_tool_call_json(c) for c in answer.calls]
        logprobs = logprobs_json(answer.text, answer.logprobs) if answer.logprobs is not None else None
        choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": answer.finish})
    out = {"id": completion_id, "object": "chat.completion", "created": created, "model": model, "choices": choices}
    if usage:
        out["usage"] = usage_json(gen)
    out.update({"service_tier": "default", "system_fingerprint": FINGERPRINT})
    return out


def _split(text: str, chunks: list[str] | None, size: int) -> list[str]:
    if chunks is not None:
        return [c for c in chunks if c]
    words = re.findall(r"\S+\s*", text) or ([text] if text else [])
    return ["".join(words[i : i + size]) for i in range(0, len(words), max(size, 1))]


def _fragments(arguments: str, count: int) -> list[str]:
    """Split an argument string into `count` fragments (so clients must concatenate)."""
    if count <= 1 or len(arguments) < 2:
        return [arguments]
    step = math.ceil(len(arguments) / count)
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


def choice_steps(
    answer: Answer, reasoning_field: str, words: int, fragments: int, flags: dict
) -> list[tuple[dict, str | None, dict | None]]:
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


def stream_chunks(
    gen: Generation,
    model: str,
    completion_id: str,
    created: int,
    include_usage: bool,
    words: int = 1,
    fragments: int = 3,
    flags: dict | None = None,
) -> list[dict]:
    """Every chunk of a stream; choices interleave step by step when n > 1."""
    flags = flags or {}
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
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


def sse_frame(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()


# --------------------------------------------------------------------------- embeddings (§6)


def unit_vector(text: str, dims: int) -> list[float]:
    """Deterministic, L2-normalised like OpenAI's embeddings."""
    values = embedding_values(text, dims)
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, what the SDKs decode (openai.md §6)
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
