"""How the fake Gemini API answers: default and scripted replies, and their wire shapes.

Pure functions, no I/O: `tests.fakes.gemini` turns a `Generation` into JSON or stream events.
Wire facts follow docs/reference/gemini.md (section numbers in comments).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------- prompt reading


def tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def contents_chars(contents: list[dict], system: dict | None = None) -> int:
    chars = 0
    for content in [*(contents or []), *([system] if system else [])]:
        for part in content.get("parts") or []:
            chars += len(part.get("text") or "")
            if "functionCall" in part:
                chars += len(json.dumps(part["functionCall"].get("args") or {}))
            if "functionResponse" in part:
                chars += len(json.dumps(part["functionResponse"].get("response") or {}))
    return chars


def last_user_text(contents: list[dict]) -> str:
    for content in reversed(contents):
        if content.get("role", "user") == "user":
            texts = [p["text"] for p in content.get("parts") or [] if isinstance(p.get("text"), str)]
            if texts:
                return "".join(texts)
    return ""


def function_responses(contents: list[dict]) -> list[dict]:
    """functionResponse parts of the last content when it is a user turn, else []."""
    last = contents[-1]
    if last.get("role", "user") != "user":
        return []
    return [p["functionResponse"] for p in last.get("parts") or [] if "functionResponse" in p]


# --------------------------------------------------------------------------- replies (§8)


@dataclass
class Candidate:
    """One answer. `parts` are wire parts; `chunks` optionally fixes how text streams."""

    parts: list[dict]
    finish_reason: str | None = "STOP"
    finish_message: str | None = None
    has_content: bool = True
    extras: dict = field(default_factory=dict)  # e.g. avgLogprobs, logprobsResult, safetyRatings
    chunks: list[str] | None = None

    def visible_chars(self, parts: list[dict] | None = None) -> int:
        chars = 0
        for part in self.parts if parts is None else parts:
            if "text" in part and not part.get("thought"):
                chars += len(part["text"])
            elif "functionCall" in part:
                chars += len(json.dumps(part["functionCall"]))
        return chars


@dataclass
class Generation:
    candidates: list[Candidate]
    prompt_tokens: int
    thoughts_tokens: int = 0
    block_reason: str | None = None


def signature_for(model: str, name: str) -> str:
    return base64.b64encode(hashlib.sha256(f"{model}/{name}".encode()).digest()).decode()


def value_for_schema(schema: Any, name: str = "") -> Any:
    """A plausible value for a (JSON or OpenAPI-subset) schema."""
    if not isinstance(schema, dict):
        return f"sample {name}".strip()
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key) or [] if str(s.get("type", "")).lower() != "null"]
        if options:
            return value_for_schema(options[0], name)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    kind = str(kind).lower()
    if kind == "object":
        return {key: value_for_schema(sub, key) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [value_for_schema(schema.get("items"), name)]
    if kind in ("integer", "number"):
        base = 1 if kind == "integer" else 1.5
        return max(base, schema.get("minimum", base))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if schema.get("format") == "date-time":
        return "2025-01-01T00:00:00Z"
    return f"sample {name}".strip()


def logprobs_for(text: str, top: int = 0) -> dict:
    steps = re.findall(r"\S+\s*", text) or [text]
    chosen = [
        {
            "token": token,
            "tokenId": int(hashlib.sha256(token.encode()).hexdigest()[:6], 16),
            "logProbability": -0.05 * (i % 4 + 1),
        }
        for i, token in enumerate(steps)
    ]
    result: dict[str, Any] = {}
    if top:
        result["topCandidates"] = [
            {
                "candidates": [c]
                + [{"token": f"alt{n}", "tokenId": n, "logProbability": c["logProbability"] - n} for n in range(1, top)]
            }
            for c in chosen
        ]
    result["chosenCandidates"] = chosen
    total = sum(c["logProbability"] for c in chosen)
    result["logProbabilitySum"] = total
    return {"avgLogprobs": total / len(chosen), "logprobsResult": result}


def _declarations(req: dict) -> list[dict]:
    return [d for tool in req.get("tools") or [] for d in tool.get("functionDeclarations") or []]


def _pick_function(req: dict, text: str) -> dict | None:
    declared = _declarations(req)
    calling = (req.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = str(calling.get("mode", "AUTO")).upper()
    if not declared or mode == "NONE" or not (mode == "ANY" or text.startswith("CALL:")):
        return None
    allowed = calling.get("allowedFunctionNames")
    usable = [d for d in declared if not allowed or d.get("name") in allowed] or declared
    wanted = text[len("CALL:") :].strip().split(" ")[0] if text.startswith("CALL:") else ""
    return next((d for d in usable if d.get("name") == wanted), usable[0])


def call_part(model: str, name: str, args: dict, call_id: str | None = None, signed: bool = False) -> dict:
    call: dict[str, Any] = {"name": name, "args": args}
    if call_id:
        call["id"] = call_id
    part: dict[str, Any] = {"functionCall": call}
    if signed:
        part["thoughtSignature"] = signature_for(model, name)
    return part


def _answer_text(req: dict, text: str) -> str:
    """Default answer: JSON when asked for JSON, an echo otherwise."""
    config = req.get("generationConfig") or {}
    mime = config.get("responseMimeType", "text/plain")
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if mime == "application/json":
        value = value_for_schema(schema) if schema else {"text": text}
        return json.dumps(value if value != {} else {"text": text})
    if mime == "text/x.enum" and schema and schema.get("enum"):
        return schema["enum"][0]
    return "Hello from fake Gemini: " + text[:200]


def _limit(text: str, config: dict) -> tuple[str, str]:
    """Apply stopSequences (text cut, STOP) then maxOutputTokens (text cut, MAX_TOKENS)."""
    for stop in config.get("stopSequences") or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = config.get("maxOutputTokens")
    if limit is not None and tokens(len(text)) > int(limit):
        return text[: int(limit) * 4], "MAX_TOKENS"
    return text, "STOP"


def default_generation(req: dict, model: str) -> Generation:
    """What the fake says when nothing is scripted. Deterministic apart from responseId:

    - last content a user turn of functionResponse parts -> text "Tool said: " + JSON list of
      the responses (this wins over ANY, so agent loops end);
    - functionDeclarations with mode ANY, or last user text starting "CALL:" (optionally
      "CALL: name") and mode not NONE -> one functionCall to that/the first allowed function,
      args built from its schema, no id, thoughtSignature on Gemini 3 models;
    - responseMimeType application/json -> a JSON object (from the schema when given);
    - else "Hello from fake Gemini: " + last user text (first 200 chars).
    Tokens are ceil(chars / 4); stopSequences and maxOutputTokens (MAX_TOKENS) apply to text;
    includeThoughts prepends a thought part; candidateCount > 1 suffixes " (candidate N)";
    responseLogprobs adds logprobsResult.
    """
    config = req.get("generationConfig") or {}
    contents = req["contents"]
    prompt = tokens(contents_chars(contents, req.get("systemInstruction")))
    text = last_user_text(contents)
    answers = function_responses(contents)
    function = None if answers else _pick_function(req, text)
    thinking = config.get("thinkingConfig") or {}
    thought = [{"text": "Thinking about it...", "thought": True}] if thinking.get("includeThoughts") else []
    candidates = []
    for index in range(int(config.get("candidateCount") or 1)):
        if function is not None:
            args = value_for_schema(function.get("parametersJsonSchema") or function.get("parameters") or {})
            parts = [
                call_part(
                    model, function["name"], args if isinstance(args, dict) else {}, signed=model.startswith("gemini-3")
                )
            ]
            finish = "STOP"
        else:
            reply = (
                "Tool said: " + json.dumps([a.get("response") for a in answers]) if answers else _answer_text(req, text)
            )
            reply, finish = _limit(reply + (f" (candidate {index + 1})" if index else ""), config)
            parts = [{"text": reply}]
        candidate = Candidate([*thought, *parts], finish)
        if config.get("responseLogprobs") and function is None:
            candidate.extras.update(logprobs_for(parts[0]["text"], int(config.get("logprobs") or 0)))
        candidates.append(candidate)
    thoughts = tokens(len(thought[0]["text"])) if thought else 0
    return Generation(candidates, prompt, thoughts)


# --------------------------------------------------------------------------- wire shapes (§8, §9)


def usage(gen: Generation, candidate_tokens: int) -> dict:
    """usageMetadata with proto3 omission of zero counts."""
    out: dict[str, Any] = {"promptTokenCount": gen.prompt_tokens}
    if candidate_tokens:
        out["candidatesTokenCount"] = candidate_tokens
    out["totalTokenCount"] = gen.prompt_tokens + candidate_tokens + gen.thoughts_tokens
    if gen.prompt_tokens:
        out["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": gen.prompt_tokens}]
    if gen.thoughts_tokens:
        out["thoughtsTokenCount"] = gen.thoughts_tokens
    return {k: v for k, v in out.items() if v}


def candidate_json(candidate: Candidate, index: int, parts: list[dict], final: bool) -> dict:
    out: dict[str, Any] = {}
    if candidate.has_content:
        out["content"] = {"parts": parts, "role": "model"} if parts else {"role": "model"}
    if final and candidate.finish_reason:
        out["finishReason"] = candidate.finish_reason
        if candidate.finish_message:
            out["finishMessage"] = candidate.finish_message
    if index:
        out["index"] = index
    if final:
        out.update(candidate.extras)
    return out


def _envelope(
    gen: Generation, candidates: list[dict], candidate_tokens: int, model: str, response_id: str, feedback: bool
) -> dict:
    out: dict[str, Any] = {}
    if candidates:
        out["candidates"] = candidates
    if feedback and gen.block_reason:
        out["promptFeedback"] = {
            "blockReason": gen.block_reason,
            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}],
        }
    out["usageMetadata"] = usage(gen, candidate_tokens)
    out["modelVersion"] = model
    out["responseId"] = response_id
    return out


def response_json(gen: Generation, model: str, response_id: str) -> dict:
    candidates = [candidate_json(c, i, c.parts, True) for i, c in enumerate(gen.candidates)]
    total = sum(tokens(c.visible_chars()) for c in gen.candidates)
    return _envelope(gen, candidates, total, model, response_id, True)


def _pieces(candidate: Candidate, words_per_chunk: int) -> list[list[dict]]:
    """Split a candidate's parts into stream deltas: text by words, calls whole and together."""
    pieces: list[list[dict]] = []
    for part in candidate.parts:
        if "functionCall" in part:
            if pieces and pieces[-1] and "functionCall" in pieces[-1][-1]:
                pieces[-1].append(part)
            else:
                pieces.append([part])
        elif "text" in part and not part.get("thought"):
            words = candidate.chunks or re.findall(r"\S+\s*", part["text"]) or [part["text"]]
            size = 1 if candidate.chunks else max(1, words_per_chunk)
            texts = ["".join(words[i : i + size]) for i in range(0, len(words), size)]
            extra = {k: v for k, v in part.items() if k != "text"}
            pieces.extend([[{"text": t, **(extra if n == 0 else {})}] for n, t in enumerate(texts)])
        else:
            pieces.append([part])
    return pieces


def stream_events(gen: Generation, model: str, response_id: str, words_per_chunk: int) -> list[dict]:
    """Stream chunks: only new parts each time, cumulative usage, finish on the last one."""
    split = [_pieces(c, words_per_chunk) for c in gen.candidates]
    count = max([1, *(len(p) for p in split)])
    sent = [0] * len(gen.candidates)
    events = []
    for step in range(count):
        candidates = []
        for index, (candidate, pieces) in enumerate(zip(gen.candidates, split)):
            last = max(len(pieces) - 1, 0)
            if step > last:
                continue
            parts = pieces[step] if pieces else []
            sent[index] += candidate.visible_chars(parts)
            candidates.append(candidate_json(candidate, index, parts, step == last))
        emitted = sum(tokens(chars) for chars in sent)
        events.append(_envelope(gen, candidates, emitted, model, response_id, step == 0))
    return events


# --------------------------------------------------------------------------- scripted replies


def _text_candidate(text: str, chunks: list[str] | None = None, finish: str = "STOP") -> Candidate:
    return Candidate([{"text": text if chunks is None else "".join(chunks)}], finish, chunks=chunks)


def scripted_generation(kind: str, kw: dict, req: dict, model: str) -> Generation:
    """The Generation a content-shaping script asks for (kinds listed in SCRIPT_KINDS)."""
    base = default_generation(req, model)
    prompt = base.prompt_tokens
    text, chunks = kw.get("text"), kw.get("chunks")
    if kind == "text" or (kind in TRANSPORT_KINDS and (text or chunks)):
        return Generation([_text_candidate(text or "", chunks, kw.get("finish_reason", "STOP"))], prompt)
    if kind == "tool_calls":
        parts = [{"text": text}] if text else []
        signature = kw.get("signature")
        for number, call in enumerate(kw["calls"]):
            if isinstance(call, dict):
                call = (call["name"], call.get("args"), call.get("id"))
            name, args, call_id = (*call, None)[:3]
            part = call_part(
                model,
                name,
                args or {},
                call_id,
                signed=number == 0 and model.startswith("gemini-3") and signature is None,
            )
            if number == 0 and signature:
                part["thoughtSignature"] = signature
            parts.append(part)
        return Generation([Candidate(parts)], prompt)
    if kind == "thinking":
        thought = kw.get("thought", "Let me think this through.")
        answer: dict[str, Any] = {"text": text or "Hello from fake Gemini: thought about it."}
        if kw.get("signature"):
            answer["thoughtSignature"] = kw["signature"]
        thoughts = kw.get("thoughts_tokens") or tokens(len(thought)) * 8
        return Generation([Candidate([{"text": thought, "thought": True}, answer])], prompt, thoughts)
    if kind == "blocked":
        return Generation([], prompt, block_reason=kw.get("reason", "SAFETY"))
    if kind == "finish":
        reason = kw.get("reason", "SAFETY")
        extras = (
            {"safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}
            if reason == "SAFETY"
            else {}
        )
        return Generation([Candidate([], reason, kw.get("message"), has_content=False, extras=extras)], prompt)
    if kind == "max_tokens_no_parts":
        limit = (req.get("generationConfig") or {}).get("maxOutputTokens") or 256
        return Generation([Candidate([], "MAX_TOKENS")], prompt, kw.get("thoughts_tokens") or int(limit))
    if kind == "logprobs":
        candidate = base.candidates[0] if text is None else _text_candidate(text)
        candidate.extras.update(logprobs_for(candidate.parts[-1].get("text", ""), kw.get("top", 2)))
        return Generation([candidate], prompt, base.thoughts_tokens)
    return base


CONTENT_KINDS = {"text", "tool_calls", "thinking", "blocked", "finish", "max_tokens_no_parts", "logprobs"}
TRANSPORT_KINDS = {"error", "raw", "break_midstream", "error_midstream", "slow"}
SCRIPT_KINDS = CONTENT_KINDS | TRANSPORT_KINDS


# --------------------------------------------------------------------------- embeddings (§11)


def embedding_values(text: str, dims: int) -> list[float]:
    """Deterministic vector in [-1, 1] derived from sha256 of the text."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [round(int.from_bytes(digest[i : i + 2], "big") / 32767.5 - 1, 6) for i in range(0, len(digest), 2)]
        counter += 1
    return values[:dims]


def embed_text(request: dict) -> str:
    parts = (request.get("content") or {}).get("parts") or []
    return "".join(p.get("text") or "" for p in parts)
