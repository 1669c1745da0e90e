"""Ollama dialect codec tables: request parsing, 400s, load requests, responses, NDJSON frames,
embeddings, model listing, error bodies, and the official ollama-python client as the judge.

Pure codec tests (no Django, no DB). Outputs are validated with ollama-python 0.6.3's own
pydantic types, and a few tests drive the real client through httpx.MockTransport.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
import re
from datetime import datetime, timezone

import httpx
import ollama
import orjson
import pytest
from ollama._types import (
    ChatResponse,
    EmbeddingsResponse,
    EmbedResponse,
    GenerateResponse,
    ListResponse,
    ShowResponse,
)

from proxy_app import errors, hub
from proxy_app.dialects import ollama as codec
from proxy_app.dialects import ollama_stream
from proxy_app.dialects.ollama import (
    ChatStreamEncoder,
    GenerateStreamEncoder,
    Timings,
    build_chat_response,
    build_embed_response,
    build_empty_embed_response,
    build_error,
    build_generate_response,
    build_legacy_embeddings_response,
    build_load_response,
    build_show,
    build_tags,
    build_version,
    is_load_request,
    parse_body,
    parse_chat_request,
    parse_embed_request,
    parse_generate_request,
    parse_legacy_embeddings_request,
    parse_load_request,
    parse_show_request,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 8
GIF = b"GIF89a" + b"\x00" * 8
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 4
PDF = b"%PDF-1.7\n"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z")
SYNTHETIC_ID = re.compile(r"call_gw_[A-Za-z0-9]{20}")
TIMINGS = Timings(total_ns=900, prompt_eval_ns=300, eval_ns=600)
METRICS = {
    "total_duration": 900,
    "load_duration": 0,
    "prompt_eval_count": 7,
    "prompt_eval_duration": 300,
    "eval_count": 11,
    "eval_duration": 600,
}
USAGE = hub.Usage(prompt_tokens=7, completion_tokens=11)
USER = {"role": "user", "content": "hi"}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def chat(**fields) -> hub.ChatRequest:
    return parse_chat_request({"model": "m", "messages": [USER], **fields})


def generate(**fields) -> hub.ChatRequest:
    return parse_generate_request({"model": "m", "prompt": "hi", **fields})


def messages(*msgs) -> list[hub.Message]:
    return parse_chat_request({"model": "m", "messages": list(msgs)}).messages


def rejected(parse, body) -> errors.InvalidRequest:
    with pytest.raises(errors.InvalidRequest) as info:
        parse(body)
    assert info.value.status == 400
    return info.value


def text(t: str) -> hub.Part:
    return hub.Part("text", text=t)


def without_time(line: bytes) -> dict:
    body = orjson.loads(line)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    return body


def call(name: str, call_id: str | None = None, **args) -> dict:
    out = {"function": {"name": name, "arguments": args}}
    if call_id is not None:
        out["id"] = call_id
    return out


def assistant(*calls) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": list(calls)}


# --- parse_body ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"model":"m"}', {"model": "m"}),
        (b'  {"model":"m"}\n', {"model": "m"}),
        (b'\xef\xbb\xbf{"model":"m"}', {"model": "m"}),  # BOM
        (b"[1]", [1]),  # parse_* then rejects it
        (bytearray(b'{"a":1}'), {"a": 1}),
    ],
)
def test_parse_body_reads_json_whatever_the_content_type(raw, expected):
    assert parse_body(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [(b"", "missing request body"), (b"  \n", "missing request body"), (None, "missing request body")],
)
def test_parse_body_rejects_empty(raw, message):
    assert rejected(parse_body, raw).message == message


@pytest.mark.parametrize("raw", [b"{", b"model=m&prompt=x", b"\xff\xfe", b'{"a":1}{'])
def test_parse_body_rejects_invalid_json(raw):
    assert rejected(parse_body, raw).message.startswith("request body is not valid JSON")


# --- /api/chat: accepted fields -------------------------------------------------------------------

ACCEPTED = [
    ({}, "stream", True),  # absent means true
    ({"stream": None}, "stream", True),
    ({"stream": True}, "stream", True),
    ({"stream": False}, "stream", False),
    ({}, "include_usage", True),
    ({"stream": False}, "include_usage", False),
    ({"options": {"num_predict": 128}}, "max_tokens", 128),
    ({"options": {"num_predict": 128.0}}, "max_tokens", 128),  # Ollama truncates numbers
    ({"options": {"num_predict": -1}}, "max_tokens", None),
    ({"options": {"num_predict": -2}}, "max_tokens", None),
    ({"options": {"num_predict": 0}}, "max_tokens", None),
    ({"options": {"temperature": 0.2}}, "temperature", 0.2),
    ({"options": {"temperature": 1}}, "temperature", 1.0),
    ({"options": {"top_p": 0.9}}, "top_p", 0.9),
    ({"options": {"top_k": 40}}, "top_k", 40),
    ({"options": {"top_k": 0}}, "top_k", None),
    ({"options": {"seed": 42}}, "seed", 42),
    ({"options": {"seed": -1}}, "seed", None),  # -1 = random
    ({"options": {"presence_penalty": 0.5}}, "presence_penalty", 0.5),
    ({"options": {"frequency_penalty": -0.5}}, "frequency_penalty", -0.5),
    ({"options": {"stop": ["\n\n", "END"]}}, "stop", ["\n\n", "END"]),
    ({"options": {"stop": "END"}}, "stop", ["END"]),
    ({"options": {"stop": ""}}, "stop", []),
    ({"options": {"stop": ["a", "", "b", "c", "d", "e", "f"]}}, "stop", ["a", "b", "c", "d", "e", "f"]),
    ({"options": {"num_ctx": 8192, "num_gpu": 1, "mirostat": 2, "repeat_penalty": 1.1}}, "max_tokens", None),
    ({"options": {"num_ctx": "not checked"}}, "temperature", None),  # ignored knobs are not validated
    ({"options": None}, "temperature", None),
    ({"format": "json"}, "response_format", hub.ResponseFormat("json_object")),
    ({"format": {}}, "response_format", hub.ResponseFormat("json_object")),
    ({"format": {"type": "object"}}, "response_format", hub.ResponseFormat("json_schema", schema={"type": "object"})),
    ({"format": ""}, "response_format", None),
    ({"format": None}, "response_format", None),
    ({}, "reasoning_effort", None),
    ({}, "include_thoughts", False),
    ({"think": True}, "include_thoughts", True),
    ({"think": True}, "reasoning_effort", None),
    ({"think": False}, "reasoning_effort", "none"),
    ({"think": False}, "include_thoughts", False),
    ({"think": "low"}, "reasoning_effort", "low"),
    ({"think": "medium"}, "reasoning_effort", "medium"),
    ({"think": "high"}, "reasoning_effort", "high"),
    ({"think": "high"}, "include_thoughts", True),
    ({"think": "max"}, "reasoning_effort", "xhigh"),
    ({"think": "max"}, "include_thoughts", True),
    ({"logprobs": True}, "logprobs", True),
    ({"logprobs": True}, "top_logprobs", None),
    ({"logprobs": True, "top_logprobs": 5}, "top_logprobs", 5),
    ({"top_logprobs": 3}, "logprobs", True),  # asking for alternatives implies logprobs
    ({"logprobs": True, "top_logprobs": 0}, "top_logprobs", None),
    ({"top_logprobs": 0}, "logprobs", False),
    ({"tools": []}, "tools", []),
    ({"tools": None}, "tools", []),
    ({"keep_alive": "5m", "truncate": True, "shift": False, "_debug_render_only": True}, "stream", True),
    ({}, "n", 1),
    ({}, "tool_choice", None),
]


@pytest.mark.parametrize(("fields", "attr", "expected"), ACCEPTED)
def test_chat_fields(fields, attr, expected):
    assert getattr(chat(**fields), attr) == expected


def test_chat_keeps_model_name_exactly():
    req = parse_chat_request({"model": "llama3.2:latest", "messages": [USER]})
    assert req.model == "llama3.2:latest"
    assert req.upstream_model == ""


def test_chat_ollama_python_default_body():
    # The body ollama-python 0.6.3 sends (ollama.md §8).
    body = {
        "model": "m",
        "stream": False,
        "options": {"num_predict": 5},
        "format": "json",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [],
        "think": False,
    }
    req = parse_chat_request(body)
    assert (req.stream, req.max_tokens, req.response_format, req.tools, req.reasoning_effort) == (
        False,
        5,
        hub.ResponseFormat("json_object"),
        [],
        "none",
    )
    assert req.messages == [hub.Message("user", [text("x")])]


def test_chat_roles_and_content():
    got = messages(
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello", "thinking": "dropped"},
        {"role": "user"},
        {"role": "system", "content": None},
    )
    assert got == [
        hub.Message("system", [text("be brief")]),
        hub.Message("user", [text("hi")]),
        hub.Message("assistant", [text("hello")]),
        hub.Message("user", [text("")]),
        hub.Message("system", [text("")]),
    ]


def test_chat_drops_empty_assistant_turns():
    got = messages(USER, {"role": "assistant", "content": ""}, USER)
    assert [m.role for m in got] == ["user", "user"]


@pytest.mark.parametrize(("raw", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")])
def test_images_are_sniffed(raw, mime):
    (msg,) = messages({"role": "user", "content": "what is this", "images": [b64(raw)]})
    assert msg.parts == [text("what is this"), hub.Part("media", mime_type=mime, data=b64(raw))]


def test_image_only_message_and_several_images():
    (msg,) = messages({"role": "user", "images": [b64(PNG), b64(JPEG)]})
    assert [p.mime_type for p in msg.parts] == ["image/png", "image/jpeg"]
    assert all(p.type == "media" for p in msg.parts)


def test_image_data_url_and_wrapped_base64_are_tolerated():
    wrapped = b64(PNG)[:8] + "\n" + b64(PNG)[8:]
    (msg,) = messages({"role": "user", "images": ["data:image/png;base64," + b64(PNG), wrapped]})
    assert [(p.mime_type, p.data) for p in msg.parts] == [("image/png", b64(PNG))] * 2


@pytest.mark.parametrize(
    ("images", "param", "fragment"),
    [
        ([b64(PDF)], "messages[0].images[0]", "not a supported image"),
        ([b64(b"hello world")], "messages[0].images[0]", "not a supported image"),
        (["***"], "messages[0].images[0]", "not valid base64"),
        ([""], "messages[0].images[0]", "must not be empty"),
        ([123], "messages[0].images[0]", "must be a string"),
        (b64(PNG), "messages[0].images", "must be an array"),
    ],
)
def test_bad_images(images, param, fragment):
    err = rejected(parse_chat_request, {"model": "m", "messages": [{"role": "user", "images": images}]})
    assert err.param == param
    assert fragment in err.message


@pytest.mark.parametrize("role", ["system", "assistant", "tool"])
def test_images_only_on_user_messages(role):
    body = {"model": "m", "messages": [assistant(call("f")), {"role": role, "images": [b64(PNG)]}]}
    err = rejected(parse_chat_request, body)
    assert (err.param, err.message) == ("messages[1].images", "images are only supported on user messages")


# --- tool calls and results ---------------------------------------------------------------------


def test_assistant_tool_calls_keep_ids_and_object_arguments():
    (msg,) = messages(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}},
                {"function": {"name": "noop"}},
                {"id": "", "function": {"name": "legacy", "arguments": '{"a": 1}'}},
            ],
        }
    )
    assert msg.role == "assistant" and msg.parts == []
    first, second, third = msg.tool_calls
    assert first == hub.ToolCall("call_1", "get_weather", {"city": "Tokyo"})
    assert (second.name, second.arguments) == ("noop", {})
    assert (third.name, third.arguments) == ("legacy", {"a": 1})
    assert SYNTHETIC_ID.fullmatch(second.id) and SYNTHETIC_ID.fullmatch(third.id)
    assert second.id != third.id


def test_synthesised_ids_are_unique():
    calls = messages(assistant(*[call("f") for _ in range(50)])).pop().tool_calls
    assert len({c.id for c in calls}) == 50


def tool_results(*msgs) -> list[tuple[str | None, str | None, str]]:
    got = messages(*msgs)
    return [(m.tool_call_id, m.name, m.text) for m in got if m.role == "tool"]


def test_tool_result_by_id():
    got = tool_results(
        USER,
        assistant(call("a", "id_a"), call("b", "id_b")),
        {"role": "tool", "tool_call_id": "id_b", "content": "B"},
        {"role": "tool", "tool_call_id": "id_a", "content": "A"},
    )
    assert got == [("id_b", "b", "B"), ("id_a", "a", "A")]


def test_tool_result_by_name_earliest_unanswered():
    got = tool_results(
        USER,
        assistant(call("weather", "w1", city="Oslo"), call("time", "t1"), call("weather", "w2", city="Rome")),
        {"role": "tool", "tool_name": "time", "content": "noon"},
        {"role": "tool", "tool_name": "weather", "content": "cold"},
        {"role": "tool", "tool_name": "weather", "content": "warm"},
    )
    assert got == [("t1", "time", "noon"), ("w1", "weather", "cold"), ("w2", "weather", "warm")]


def test_tool_result_by_position():
    got = tool_results(
        USER,
        assistant(call("a", "id_a"), call("b", "id_b")),
        {"role": "tool", "content": "first"},
        {"role": "tool", "content": "second"},
    )
    assert got == [("id_a", "a", "first"), ("id_b", "b", "second")]


def test_tool_result_with_synthesised_ids_matches_by_name():
    got = messages(
        USER,
        assistant(call("a"), call("b")),
        {"role": "tool", "tool_name": "b", "content": "B"},
        {"role": "tool", "tool_name": "a", "content": "A"},
    )
    calls = got[1].tool_calls
    assert [(m.tool_call_id, m.name) for m in got[2:]] == [(calls[1].id, "b"), (calls[0].id, "a")]


def test_tool_result_unknown_id_falls_back_to_name_then_position():
    got = tool_results(
        USER,
        assistant(call("a", "id_a"), call("b", "id_b")),
        {"role": "tool", "tool_call_id": "client_made_up", "tool_name": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "client_made_up_2", "content": "A"},
    )
    assert got == [("id_b", "b", "B"), ("id_a", "a", "A")]


def test_tool_results_across_turns_prefer_the_latest_turn():
    got = tool_results(
        USER,
        assistant(call("f", "old")),
        {"role": "tool", "content": "old result"},
        {"role": "assistant", "content": "done"},
        USER,
        assistant(call("f", "new")),
        {"role": "tool", "tool_name": "f", "content": "new result"},
    )
    assert got == [("old", "f", "old result"), ("new", "f", "new result")]


def test_tool_result_id_from_an_older_turn_is_honoured():
    got = tool_results(USER, assistant(call("f", "x1")), {"role": "tool", "tool_call_id": "x1", "content": "r"})
    assert got == [("x1", "f", "r")]


@pytest.mark.parametrize(
    "msgs",
    [
        [USER, {"role": "tool", "content": "orphan"}],
        [USER, {"role": "tool", "tool_name": "f", "content": "orphan"}],
        [USER, assistant(call("f", "c1")), {"role": "tool", "content": "1"}, {"role": "tool", "content": "extra"}],
    ],
)
def test_tool_result_without_a_call_is_rejected(msgs):
    err = rejected(parse_chat_request, {"model": "m", "messages": msgs})
    assert err.param == f"messages[{len(msgs) - 1}]"
    assert "no earlier assistant tool call" in err.message


def test_tools_are_parsed_like_openai():
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    req = chat(
        tools=[
            {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": params}},
            {"function": {"name": "no_type"}},
        ]
    )
    assert req.tools == [hub.Tool("get_weather", "Weather", params), hub.Tool("no_type")]


# --- /api/chat: rejected -----------------------------------------------------------------------

M = [USER]
REJECTED = [
    ([], None, "request body must be a JSON object"),
    ("x", None, "request body must be a JSON object"),
    ({"messages": M}, "model", "model is required"),
    ({"model": "", "messages": M}, "model", "model is required"),
    ({"model": 3, "messages": M}, "model", "'model' must be a string"),
    ({"model": "m", "messages": "hi"}, "messages", "'messages' must be an array"),
    ({"model": "m", "messages": []}, "messages", "'messages' must not be empty (an empty list only loads the model)"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]", "'messages[0]' must be an object"),
    ({"model": "m", "messages": [{"role": "developer", "content": "x"}]}, "messages[0].role", "'messages[0].role' must be one of system, user, assistant, tool"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "'messages[0].role' must be one of system, user, assistant, tool"),
    ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, "messages[0].content", "'messages[0].content' must be a string"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": {}}]}, "messages[0].tool_calls", "'messages[0].tool_calls' must be an array"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [1]}]}, "messages[0].tool_calls[0]", "'messages[0].tool_calls[0]' must be an object"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{}]}]}, "messages[0].tool_calls[0].function", "'messages[0].tool_calls[0].function' must be an object"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]}, "messages[0].tool_calls[0].function.name", "'messages[0].tool_calls[0].function.name' must be a string"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": ""}}]}]}, "messages[0].tool_calls[0].function.name", "'messages[0].tool_calls[0].function.name' must not be empty"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]}, "messages[0].tool_calls[0].function.arguments", "invalid tool call arguments: expected a JSON object"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}]}, "messages[0].tool_calls[0].function.arguments", "invalid tool call arguments: expected a JSON object"),
    ({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": 5, "function": {"name": "f"}}]}]}, "messages[0].tool_calls[0].id", "'messages[0].tool_calls[0].id' must be a string"),
    ({"model": "m", "messages": [assistant(call("f")), {"role": "tool", "tool_call_id": 1}]}, "messages[1].tool_call_id", "'messages[1].tool_call_id' must be a string"),
    ({"model": "m", "messages": M, "stream": "yes"}, "stream", "'stream' must be a boolean"),
    ({"model": "m", "messages": M, "format": "xml"}, "format", "'format' must be \"json\" or a JSON schema object"),
    ({"model": "m", "messages": M, "format": 1}, "format", "'format' must be \"json\" or a JSON schema object"),
    ({"model": "m", "messages": M, "options": []}, "options", "'options' must be an object"),
    ({"model": "m", "messages": M, "options": {"temperature": "hot"}}, "options.temperature", "'options.temperature' must be a number"),
    ({"model": "m", "messages": M, "options": {"temperature": True}}, "options.temperature", "'options.temperature' must be a number"),
    ({"model": "m", "messages": M, "options": {"num_predict": "10"}}, "options.num_predict", "'options.num_predict' must be a number"),
    ({"model": "m", "messages": M, "options": {"top_k": [1]}}, "options.top_k", "'options.top_k' must be a number"),
    ({"model": "m", "messages": M, "options": {"seed": 2**40}}, "options.seed", "'options.seed' must be at most 2147483647"),
    ({"model": "m", "messages": M, "options": {"stop": [1]}}, "options.stop[0]", "'options.stop[0]' must be a string"),
    ({"model": "m", "messages": M, "options": {"stop": 5}}, "options.stop", "'options.stop' must be an array"),
    ({"model": "m", "messages": M, "think": "extreme"}, "think", "'think' must be true, false, \"low\", \"medium\", \"high\" or \"max\""),
    ({"model": "m", "messages": M, "think": 1}, "think", "'think' must be true, false, \"low\", \"medium\", \"high\" or \"max\""),
    ({"model": "m", "messages": M, "logprobs": "yes"}, "logprobs", "'logprobs' must be a boolean"),
    ({"model": "m", "messages": M, "top_logprobs": 21}, "top_logprobs", "top_logprobs must be between 0 and 20"),
    ({"model": "m", "messages": M, "top_logprobs": -1}, "top_logprobs", "top_logprobs must be between 0 and 20"),
    ({"model": "m", "messages": M, "top_logprobs": 2.5}, "top_logprobs", "'top_logprobs' must be an integer"),
    ({"model": "m", "messages": M, "tools": {}}, "tools", "'tools' must be an array"),
    ({"model": "m", "messages": M, "tools": [{"type": "retrieval"}]}, "tools[0].type", "only function tools are supported, got 'retrieval'"),
    ({"model": "m", "messages": M, "tools": [{"type": "function"}]}, "tools[0].function", "'tools[0].function' must be an object"),
    ({"model": "m", "messages": M, "tools": [{"function": {"name": "a b"}}]}, "tools[0].function.name", "function names may use only a-z, A-Z, 0-9, _ . : - and at most 64 characters"),
    ({"model": "m", "messages": M, "tools": [{"function": {"name": "f"}}, {"function": {"name": "f"}}]}, "tools[1].function.name", "duplicate function name 'f'"),
    ({"model": "m", "messages": M, "tools": [{"function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters", "'tools[0].function.parameters' must be an object"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param", "message"), REJECTED)
def test_chat_rejects(body, param, message):
    err = rejected(parse_chat_request, body)
    assert (err.param, err.message) == (param, message)


# --- load requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"model": "m", "messages": []}, True),
        ({"model": "m"}, True),
        ({"model": "m", "prompt": ""}, True),
        ({"model": "m", "prompt": "", "images": []}, True),
        ({"model": "m", "keep_alive": 0}, True),
        ({"model": "m", "messages": [USER]}, False),
        ({"model": "m", "prompt": "hi"}, False),
        ({"model": "m", "prompt": "", "images": [b64(PNG)]}, False),
        ({"model": "m", "messages": "garbage"}, False),  # parse_chat_request then 400s
        ({"model": "m", "messages": {}}, False),
        ([], False),
        (None, False),
    ],
)
def test_is_load_request(body, expected):
    assert is_load_request(body) is expected


@pytest.mark.parametrize(
    ("keep_alive", "reason"),
    [
        (None, "load"),
        ("5m", "load"),
        (300, "load"),
        (-1, "load"),
        ("-1m", "load"),
        ("0.5s", "load"),
        ("junk", "load"),
        (True, "load"),
        (False, "load"),
        ([0], "load"),
        (0, "unload"),
        (0.0, "unload"),
        ("0", "unload"),
        ("0s", "unload"),
        ("0m", "unload"),
        ("0h0m0s", "unload"),
        (" 0ms ", "unload"),
    ],
)
def test_parse_load_request(keep_alive, reason):
    body = {"model": "llama3:latest", "messages": []}
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    assert parse_load_request(body) == codec.LoadRequest("llama3:latest", reason)


def test_parse_load_request_needs_a_model():
    assert rejected(parse_load_request, {"messages": []}).message == "model is required"


@pytest.mark.parametrize("reason", ["load", "unload"])
def test_chat_load_response(reason):
    body = build_load_response("llama3:latest", done_reason=reason)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {
        "model": "llama3:latest",
        "message": {"role": "assistant", "content": ""},
        "done_reason": reason,
        "done": True,
    }
    ChatResponse.model_validate(build_load_response("m", done_reason=reason))


def test_generate_load_response():
    body = build_load_response("m", done_reason="load", generate=True)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {"model": "m", "response": "", "done_reason": "load", "done": True}
    GenerateResponse.model_validate(build_load_response("m", generate=True))


# --- /api/generate ------------------------------------------------------------------------------


def test_generate_system_prompt_and_images():
    req = generate(system="be brief", prompt="what is this", images=[b64(PNG)])
    assert req.messages == [
        hub.Message("system", [text("be brief")]),
        hub.Message("user", [text("what is this"), hub.Part("media", mime_type="image/png", data=b64(PNG))]),
    ]


def test_generate_image_only_prompt():
    (msg,) = parse_generate_request({"model": "m", "images": [b64(GIF)]}).messages
    assert msg == hub.Message("user", [hub.Part("media", mime_type="image/gif", data=b64(GIF))])


def test_generate_ignores_template_raw_context_and_keep_alive():
    req = generate(system="", template="{{ .Prompt }}", raw=True, context=[1, 2, 3], keep_alive="5m", suffix="")
    assert req.messages == [hub.Message("user", [text("hi")])]


@pytest.mark.parametrize(
    ("fields", "attr", "expected"),
    [
        ({}, "stream", True),
        ({"stream": False}, "stream", False),
        ({"format": "json"}, "response_format", hub.ResponseFormat("json_object")),
        ({"options": {"num_predict": 9, "stop": "x"}}, "max_tokens", 9),
        ({"options": {"stop": "x"}}, "stop", ["x"]),
        ({"think": "max"}, "reasoning_effort", "xhigh"),
        ({"think": True}, "include_thoughts", True),
        ({"logprobs": True, "top_logprobs": 2}, "top_logprobs", 2),
        ({}, "tools", []),
    ],
)
def test_generate_fields(fields, attr, expected):
    assert getattr(generate(**fields), attr) == expected


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "codellama:7b", "prompt": "def f(", "suffix": "return x"}, "suffix", '"codellama:7b" does not support insert'),
        ({"model": "m", "prompt": ""}, "prompt", "'prompt' must not be empty (an empty prompt only loads the model)"),
        ({"model": "m", "prompt": 5}, "prompt", "'prompt' must be a string"),
        ({"model": "m", "prompt": "x", "system": ["a"]}, "system", "'system' must be a string"),
        ({"model": "m", "prompt": "x", "suffix": 1}, "suffix", "'suffix' must be a string"),
        ({"model": "m", "prompt": "x", "images": [b64(PDF)]}, "images[0]", "'images[0]' is not a supported image: expected PNG, JPEG, GIF or WEBP data"),
        ({"prompt": "x"}, "model", "model is required"),
        ({"model": "m", "prompt": "x", "think": "none"}, "think", "'think' must be true, false, \"low\", \"medium\", \"high\" or \"max\""),
    ],
)  # fmt: skip
def test_generate_rejects(body, param, message):
    err = rejected(parse_generate_request, body)
    assert (err.param, err.message) == (param, message)


# --- whole responses ------------------------------------------------------------------------------


def chat_response(**choice) -> hub.ChatResponse:
    return hub.ChatResponse(choices=[hub.Choice(**choice)], usage=USAGE)


def test_build_chat_response_full_shape():
    resp = chat_response(
        text="It is cold.",
        reasoning="Look it up.",
        tool_calls=[hub.ToolCall("call_1", "get_weather", {"city": "Oslo"}), hub.ToolCall("call_2", "noop", {})],
        finish_reason="tool_calls",
    )
    body = build_chat_response(resp, "llama3.2:latest", timings=TIMINGS)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {
        "model": "llama3.2:latest",
        "message": {
            "role": "assistant",
            "content": "It is cold.",
            "thinking": "Look it up.",
            "tool_calls": [
                {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"id": "call_2", "function": {"index": 1, "name": "noop", "arguments": {}}},
            ],
        },
        "done": True,
        "done_reason": "stop",
        **METRICS,
    }
    parsed = ChatResponse.model_validate(build_chat_response(resp, "m", timings=TIMINGS))
    assert parsed.message.tool_calls[0].function.arguments == {"city": "Oslo"}
    assert (parsed.eval_count, parsed.prompt_eval_count, parsed.done_reason) == (11, 7, "stop")


def test_build_chat_response_plain_text_has_no_optional_keys():
    body = build_chat_response(chat_response(text="hi"), "m", timings=TIMINGS)
    assert body["message"] == {"role": "assistant", "content": "hi"}
    assert "logprobs" not in body


@pytest.mark.parametrize(
    ("reason", "done_reason"),
    [("stop", "stop"), ("tool_calls", "stop"), ("length", "length"), ("content_filter", "content_filter")],
)
def test_done_reasons(reason, done_reason):
    resp = chat_response(text="x", finish_reason=reason)
    assert build_chat_response(resp, "m", timings=TIMINGS)["done_reason"] == done_reason
    assert build_generate_response(resp, "m", timings=TIMINGS)["done_reason"] == done_reason


@pytest.mark.parametrize("build", [build_chat_response, build_generate_response])
def test_error_finish_is_the_callers_job(build):
    with pytest.raises(ValueError):
        build(chat_response(finish_reason="error", finish_message="bad call"), "m", timings=TIMINGS)


def test_build_chat_response_uses_choice_zero_and_survives_no_choices():
    resp = hub.ChatResponse(choices=[hub.Choice(index=1, text="b"), hub.Choice(index=0, text="a")], usage=USAGE)
    assert build_chat_response(resp, "m", timings=TIMINGS)["message"]["content"] == "a"
    empty = build_chat_response(hub.ChatResponse(choices=[], usage=hub.Usage()), "m", timings=TIMINGS)
    assert (empty["message"], empty["done_reason"], empty["eval_count"]) == ({"role": "assistant", "content": ""}, "stop", 0)


def test_build_chat_response_logprobs():
    logprobs = [hub.TokenLogprob("Hi", -0.25, [("Hi", -0.25), ("Hey", -1.5)])]
    body = build_chat_response(chat_response(text="Hi", logprobs=logprobs), "m", timings=TIMINGS)
    assert body["logprobs"] == [
        {
            "token": "Hi",
            "logprob": -0.25,
            "bytes": [72, 105],
            "top_logprobs": [
                {"token": "Hi", "logprob": -0.25, "bytes": [72, 105]},
                {"token": "Hey", "logprob": -1.5, "bytes": [72, 101, 121]},
            ],
        }
    ]
    assert ChatResponse.model_validate(body).logprobs[0].top_logprobs[1].token == "Hey"


def test_build_generate_response_shape():
    body = build_generate_response(chat_response(text="Blue.", reasoning="Sky."), "m:7b", timings=TIMINGS)
    assert TIMESTAMP.fullmatch(body.pop("created_at"))
    assert body == {"model": "m:7b", "response": "Blue.", "thinking": "Sky.", "done": True, "done_reason": "stop", **METRICS}
    assert "context" not in body
    GenerateResponse.model_validate(body)
    plain = build_generate_response(chat_response(text="Blue."), "m", timings=TIMINGS)
    assert "thinking" not in plain


def test_created_at_format():
    moment = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert ollama_stream.timestamp(moment) == "2026-01-02T03:04:05.123456000Z"
    assert TIMESTAMP.fullmatch(ollama_stream.timestamp())


# --- timings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started", "first", "ended", "expected"),
    [
        (10.0, 10.25, 11.0, (1_000_000_000, 250_000_000, 750_000_000)),
        (10.0, None, 12.0, (2_000_000_000, 2_000_000_000, 1)),  # no first byte: all prompt eval
        (10.0, 10.0, 10.0, (1, 1, 1)),  # never zero: clients divide by durations
        (10.0, 9.0, 11.0, (1_000_000_000, 1, 1_000_000_000)),  # first byte before start: clamped
        (10.0, 12.0, 11.0, (1_000_000_000, 1_000_000_000, 1)),  # first byte after end: clamped
    ],
)
def test_timings_measure(started, first, ended, expected):
    t = Timings.measure(started, first, ended)
    assert (t.total_ns, t.prompt_eval_ns, t.eval_ns, t.load_ns) == (*expected, 0)


def test_timings_measure_defaults_end_to_now(monkeypatch):
    monkeypatch.setattr(ollama_stream.time, "monotonic", lambda: 105.0)
    assert Timings.measure(100.0).total_ns == 5_000_000_000


# --- streams --------------------------------------------------------------------------------------


def event(**delta) -> hub.StreamEvent:
    return hub.StreamEvent(deltas=[hub.ChoiceDelta(**delta)])


def run(encoder, events, usage=USAGE, timings=TIMINGS) -> list[bytes]:
    lines = [line for e in events for line in encoder.encode(e)]
    return lines + encoder.finish(usage, timings)


def test_chat_stream_sequence():
    lines = run(
        ChatStreamEncoder("llama3.2"),
        [
            event(reasoning="Let me think."),
            event(text="The"),
            event(text=" answer", reasoning="More."),
            event(text=""),
            event(tool_calls=[hub.ToolCall("call_1", "get_weather", {"city": "Tokyo"})]),
            event(tool_calls=[hub.ToolCall("call_2", "get_time", {})], finish_reason="tool_calls"),
        ],
    )
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    head = {"model": "llama3.2"}
    assert [without_time(line) for line in lines] == [
        {**head, "message": {"role": "assistant", "content": "", "thinking": "Let me think."}, "done": False},
        {**head, "message": {"role": "assistant", "content": "The"}, "done": False},
        {**head, "message": {"role": "assistant", "content": "", "thinking": "More."}, "done": False},
        {**head, "message": {"role": "assistant", "content": " answer"}, "done": False},
        {
            **head,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}}],
            },
            "done": False,
        },
        {
            **head,
            "message": {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "call_2", "function": {"index": 1, "name": "get_time", "arguments": {}}}],
            },
            "done": False,
        },
        {**head, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop", **METRICS},
    ]
    for line in lines:
        ChatResponse.model_validate_json(line)


def test_generate_stream_sequence():
    lines = run(
        GenerateStreamEncoder("m"),
        [event(reasoning="hmm"), event(text="Hello"), event(text=" world", finish_reason="length")],
    )
    assert [without_time(line) for line in lines] == [
        {"model": "m", "response": "", "thinking": "hmm", "done": False},
        {"model": "m", "response": "Hello", "done": False},
        {"model": "m", "response": " world", "done": False},
        {"model": "m", "response": "", "done": True, "done_reason": "length", **METRICS},
    ]
    for line in lines:
        GenerateResponse.model_validate_json(line)


@pytest.mark.parametrize("encoder_class", [ChatStreamEncoder, GenerateStreamEncoder])
def test_stream_ends_with_stop_when_no_reason_was_seen(encoder_class):
    (final,) = encoder_class("m").finish(None, TIMINGS)
    body = without_time(final)
    assert (body["done"], body["done_reason"], body["eval_count"], body["prompt_eval_count"]) == (True, "stop", 0, 0)


def test_stream_shows_only_choice_zero():
    encoder = ChatStreamEncoder("m")
    frames = encoder.encode(hub.StreamEvent(deltas=[hub.ChoiceDelta(index=1, text="other"), hub.ChoiceDelta(index=0, text="mine")]))
    assert [without_time(f)["message"]["content"] for f in frames] == ["mine"]
    assert encoder.encode(event(index=1, finish_reason="error")) == []


def test_stream_ignores_output_after_finish():
    encoder = ChatStreamEncoder("m")
    assert len(encoder.encode(event(text="a", finish_reason="content_filter"))) == 1
    assert encoder.encode(event(text="late")) == []
    assert without_time(encoder.finish(USAGE, TIMINGS)[0])["done_reason"] == "content_filter"


def test_stream_ignores_usage_on_events():
    encoder = ChatStreamEncoder("m")
    assert encoder.encode(hub.StreamEvent(usage=hub.Usage(1, 2))) == []


@pytest.mark.parametrize("encoder_class", [ChatStreamEncoder, GenerateStreamEncoder])
def test_stream_error_finish_raises(encoder_class):
    encoder = encoder_class("m")
    encoder.encode(event(text="partial"))
    with pytest.raises(errors.UpstreamError) as info:
        encoder.encode(event(text="lost", finish_reason="error", finish_message="MALFORMED_FUNCTION_CALL"))
    assert info.value.message == "MALFORMED_FUNCTION_CALL"
    with pytest.raises(errors.UpstreamError) as info:
        encoder_class("m").encode(event(finish_reason="error"))
    assert info.value.message == "the model produced a malformed function call"


@pytest.mark.parametrize("encoder_class", [ChatStreamEncoder, GenerateStreamEncoder])
def test_stream_error_line(encoder_class):
    line = encoder_class("m").error(errors.UpstreamTimeout("upstream timed out"))
    assert line == b'{"error":"upstream timed out"}\n'


def test_stream_logprobs_on_content_lines():
    (line,) = ChatStreamEncoder("m").encode(event(text="a", logprobs=[hub.TokenLogprob("a", -0.5)]))
    body = without_time(line)
    assert body["logprobs"] == [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}]
    ChatResponse.model_validate(body)


def test_stream_survives_huge_integers_in_arguments():
    (line,) = ChatStreamEncoder("m").encode(event(tool_calls=[hub.ToolCall("c", "f", {"n": 2**70})]))
    assert without_time(line)["message"]["tool_calls"][0]["function"]["arguments"] == {"n": 2**70}


# --- embeddings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input_", "expected"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ("", []),
        ([], []),
        (None, []),
    ],
)
def test_parse_embed_request_inputs(input_, expected):
    body = {"model": "all-minilm", "truncate": False, "keep_alive": "5m", "options": {"num_ctx": 1}}
    if input_ is not None:
        body["input"] = input_
    req = parse_embed_request(body)
    assert req == hub.EmbedRequest(model="all-minilm", inputs=expected, normalize=True)


def test_parse_embed_request_dimensions():
    assert parse_embed_request({"model": "m", "input": "x", "dimensions": 256}).dimensions == 256


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"model": "m", "input": 5}, "input", "invalid input type: 'input' must be a string or an array of strings"),
        ({"model": "m", "input": {"a": 1}}, "input", "invalid input type: 'input' must be a string or an array of strings"),
        ({"model": "m", "input": ["a", 1]}, "input[1]", "'input[1]' must be a string"),
        ({"model": "m", "input": ["a", ""]}, "input[1]", "'input[1]' must not be empty"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "'dimensions' must be at least 1"),
        ({"model": "m", "input": "x", "dimensions": "8"}, "dimensions", "'dimensions' must be an integer"),
        ({"input": "x"}, "model", "model is required"),
    ],
)
def test_parse_embed_request_rejects(body, param, message):
    err = rejected(parse_embed_request, body)
    assert (err.param, err.message) == (param, message)


@pytest.mark.parametrize(("prompt", "inputs"), [("hello", ["hello"]), ("", []), (None, [])])
def test_parse_legacy_embeddings_request(prompt, inputs):
    body = {"model": "m", "options": {}, "keep_alive": "5m"}
    if prompt is not None:
        body["prompt"] = prompt
    assert parse_legacy_embeddings_request(body) == hub.EmbedRequest(model="m", inputs=inputs, normalize=False)


def test_parse_legacy_embeddings_request_rejects():
    assert rejected(parse_legacy_embeddings_request, {"model": "m", "prompt": ["x"]}).param == "prompt"
    assert rejected(parse_legacy_embeddings_request, {"prompt": "x"}).message == "model is required"


def test_build_embed_response_normalises():
    resp = hub.EmbedResponse(vectors=[[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], usage=hub.Usage(prompt_tokens=8))
    body = build_embed_response(resp, "all-minilm", timings=Timings(total_ns=50, load_ns=0))
    assert body == {
        "model": "all-minilm",
        "embeddings": [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]],
        "total_duration": 50,
        "load_duration": 0,
        "prompt_eval_count": 8,
    }
    assert resp.vectors[0] == [3.0, 4.0]  # the hub object is not mutated
    parsed = EmbedResponse.model_validate(body)
    assert math.isclose(math.hypot(*parsed.embeddings[0]), 1.0)


def test_build_embed_response_normalising_twice_changes_nothing():
    once = build_embed_response(hub.EmbedResponse([[1.0, 2.0, 2.0]], hub.Usage()), "m", timings=TIMINGS)["embeddings"]
    twice = build_embed_response(hub.EmbedResponse(once, hub.Usage()), "m", timings=TIMINGS)["embeddings"]
    assert all(math.isclose(a, b) for a, b in zip(once[0], twice[0]))


def test_build_embed_response_without_normalising():
    body = build_embed_response(hub.EmbedResponse([[3.0, 4.0]], hub.Usage()), "m", timings=TIMINGS, normalize=False)
    assert body["embeddings"] == [[3.0, 4.0]]


def test_empty_embed_response():
    body = build_empty_embed_response("all-minilm")
    assert body == {"model": "all-minilm", "embeddings": []}
    EmbedResponse.model_validate(body)


@pytest.mark.parametrize(("vectors", "expected"), [([[3.0, 4.0]], [3.0, 4.0]), ([], [])])
def test_legacy_embeddings_response(vectors, expected):
    body = build_legacy_embeddings_response(hub.EmbedResponse(vectors, hub.Usage()))
    assert body == {"embedding": expected}
    EmbeddingsResponse.model_validate(body)


# --- model listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "name", "family"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash:latest", "gemini"),
        ("gemma-3-27b-it", "gemma-3-27b-it:latest", "gemma"),
        ("gpt-4o", "gpt-4o:latest", "openai"),
        ("llama3:8b", "llama3:8b", "openai"),
        ("team/model", "team/model:latest", "openai"),
        ("google/gemini-pro:search", "google/gemini-pro:search", "gemini"),
        ("host:5000/model", "host:5000/model:latest", "openai"),
    ],
)
def test_build_tags_entry(model_id, name, family):
    info = hub.ModelInfo(id=model_id, created=1_700_000_000, methods=["generateContent"])
    (entry,) = build_tags([info])["models"]
    assert entry == {
        "name": name,
        "model": name,
        "modified_at": "2023-11-14T22:13:20.000000000Z",
        "size": 0,
        "digest": hashlib.sha256(model_id.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "",
            "quantization_level": "",
        },
        "capabilities": ["completion", "tools", "vision", "thinking"],
    }


def test_build_tags_validates_with_ollama_python():
    infos = [hub.ModelInfo(id="gemini-2.5-flash"), hub.ModelInfo(id="text-embedding-004", created=5)]
    parsed = ListResponse.model_validate(build_tags(infos))
    assert [m.model for m in parsed.models] == ["gemini-2.5-flash:latest", "text-embedding-004:latest"]
    assert parsed.models[0].details.family == "gemini"
    assert len(parsed.models[0].digest) == 64
    assert build_tags([]) == {"models": []}


@pytest.mark.parametrize(
    ("info", "capabilities"),
    [
        (hub.ModelInfo(id="gemini-2.5-pro", methods=["generateContent", "countTokens"]), ["completion", "tools", "vision", "thinking"]),
        (hub.ModelInfo(id="gemini-embedding-001", methods=["embedContent", "countTokens"]), ["embedding"]),
        (hub.ModelInfo(id="my-embedder", methods=["embedContent", "batchEmbedContents"]), ["embedding"]),
        (hub.ModelInfo(id="text-embedding-3-small"), ["embedding"]),
        (hub.ModelInfo(id="gpt-4o"), ["completion", "tools", "vision", "thinking"]),
        (hub.ModelInfo(id="hybrid", methods=["generateContent", "embedContent"]), ["completion", "tools", "vision", "thinking"]),
    ],
)  # fmt: skip
def test_show_capabilities(info, capabilities):
    assert build_show(info)["capabilities"] == capabilities


def test_build_show_shape():
    info = hub.ModelInfo(id="gemini-2.5-flash", created=1_700_000_000, input_token_limit=1_048_576, methods=["generateContent"])
    body = build_show(info)
    assert body == {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "gemini",
            "families": ["gemini"],
            "parameter_size": "",
            "quantization_level": "",
        },
        "model_info": {"general.architecture": "gemini", "gemini.context_length": 1_048_576},
        "capabilities": ["completion", "tools", "vision", "thinking"],
        "modified_at": "2023-11-14T22:13:20.000000000Z",
    }
    parsed = ShowResponse.model_validate(body)
    assert parsed.modelinfo["gemini.context_length"] == 1_048_576
    assert "vision" in parsed.capabilities


def test_build_show_default_context_length():
    model_info = build_show(hub.ModelInfo(id="gpt-4o"))["model_info"]
    assert model_info == {"general.architecture": "openai", "openai.context_length": 32768}


@pytest.mark.parametrize(
    ("body", "name"),
    [({"model": "llava"}, "llava"), ({"name": "llava:latest"}, "llava:latest"), ({"model": "a", "name": "b"}, "a"), ({"model": "", "name": "b"}, "b")],
)
def test_parse_show_request(body, name):
    assert parse_show_request(body) == name


@pytest.mark.parametrize(
    ("body", "message"),
    [({}, "model is required"), ({"model": ""}, "model is required"), ({"model": 1}, "'model' must be a string"), ([], "request body must be a JSON object")],
)
def test_parse_show_request_rejects(body, message):
    assert rejected(parse_show_request, body).message == message


def test_version_and_root():
    assert build_version() == {"version": "0.6.4"}
    assert tuple(int(x) for x in build_version()["version"].split(".")) >= (0, 6, 4)
    assert codec.ROOT_TEXT == "Ollama is running"
    assert codec.MEDIA_TYPE == "application/x-ndjson"


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "body"),
    [
        (errors.InvalidRequest("'stream' must be a boolean", param="stream"), {"error": "'stream' must be a boolean"}),
        (errors.Unauthorized("Missing API key."), {"error": "Missing API key."}),
        (errors.Forbidden("This API key may not use the model 'x'."), {"error": "This API key may not use the model 'x'."}),
        (errors.NotFound("The model 'llama3:latest' does not exist or you do not have access to it."), {"error": "model 'llama3:latest' not found"}),
        (errors.NotFound("models/foo is not found for API version v1beta"), {"error": "models/foo is not found for API version v1beta"}),
        (errors.NotFound("Unknown endpoint GET /api/nope", code="not_found"), {"error": "Unknown endpoint GET /api/nope"}),
        (errors.PayloadTooLarge("too big"), {"error": "too big"}),
        (errors.RateLimited("slow down", retry_after=3), {"error": "slow down"}),
        (errors.UpstreamError("upstream authentication failed"), {"error": "upstream authentication failed"}),
        (errors.UpstreamUnavailable("no upstream"), {"error": "no upstream"}),
        (errors.UpstreamTimeout("timed out"), {"error": "timed out"}),
    ],
)  # fmt: skip
def test_build_error(err, body):
    assert build_error(err) == body


def test_build_error_names_the_requested_model():
    err = errors.NotFound("no such alias")
    assert build_error(err, model="mistral") == {"error": "model 'mistral' not found"}


# --- malformed input never escapes as anything but InvalidRequest ------------------------------------

JUNK = [None, True, 0, -1, 1.5, float("inf"), "", "x", "json", [], [None], ["x"], [{}], {}, {"a": 1}, {"function": None}]
SAMPLES = {
    parse_chat_request: {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u", "images": [b64(PNG)]},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "content": "r", "tool_name": "f", "tool_call_id": "c"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}],
        "format": {"type": "object"},
        "options": {"num_predict": 1, "temperature": 0.1, "top_p": 0.5, "top_k": 3, "seed": 1, "stop": ["x"],
                    "presence_penalty": 0.1, "frequency_penalty": 0.1},
        "think": "low",
        "stream": False,
        "logprobs": True,
        "top_logprobs": 2,
        "keep_alive": "5m",
    },
    parse_generate_request: {
        "model": "m", "prompt": "p", "system": "s", "suffix": "", "images": [b64(JPEG)], "format": "json",
        "options": {"stop": "x"}, "think": True, "stream": True, "template": "t", "raw": False, "context": [1],
    },
    parse_embed_request: {"model": "m", "input": ["a", "b"], "dimensions": 3, "truncate": True},
    parse_legacy_embeddings_request: {"model": "m", "prompt": "p"},
    parse_show_request: {"model": "m", "verbose": True},
    parse_load_request: {"model": "m", "messages": [], "keep_alive": 0},
}  # fmt: skip


def paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from paths(item, (*prefix, k))


def replaced(body, path, junk):
    if not path:
        return copy.deepcopy(junk)
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = copy.deepcopy(junk)
    return out


@pytest.mark.parametrize("parse", list(SAMPLES), ids=lambda f: f.__name__)
def test_malformed_values_raise_only_invalid_request(parse):
    sample = SAMPLES[parse]
    parse(copy.deepcopy(sample))  # the sample itself is valid
    tried = 0
    for path in paths(sample):
        for junk in JUNK:
            try:
                parse(replaced(sample, path, junk))
            except errors.InvalidRequest:
                pass
            tried += 1
    assert tried > 20


@pytest.mark.parametrize("parse", list(SAMPLES), ids=lambda f: f.__name__)
def test_missing_keys_raise_only_invalid_request(parse):
    sample = SAMPLES[parse]
    for path in paths(sample):
        if not path or not isinstance(path[-1], str):
            continue
        body = copy.deepcopy(sample)
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        try:
            parse(body)
        except errors.InvalidRequest:
            pass


# --- the official client against the codec (httpx.MockTransport) ------------------------------------

REPLY = [
    hub.StreamEvent(deltas=[hub.ChoiceDelta(reasoning="Hmm.")]),
    hub.StreamEvent(deltas=[hub.ChoiceDelta(text="It is ")]),
    hub.StreamEvent(deltas=[hub.ChoiceDelta(text="sunny.", finish_reason="stop")]),
]


def fake_server(request: httpx.Request) -> httpx.Response:
    """A toy /api/* server built from the codec alone: what the real views will do, minus I/O."""
    path = request.url.path
    if path == "/api/tags":
        return httpx.Response(200, json=build_tags([hub.ModelInfo(id="gemini-2.5-flash")]))
    body = parse_body(request.content)
    if path == "/api/show":
        name = parse_show_request(body)
        if name != "gemini-2.5-flash":
            return httpx.Response(404, json=build_error(errors.NotFound(f"The model '{name}' does not exist.")))
        return httpx.Response(200, json=build_show(hub.ModelInfo(id=name, input_token_limit=1000)))
    if path == "/api/embed":
        req = parse_embed_request(body)
        if not req.inputs:
            return httpx.Response(200, json=build_empty_embed_response(req.model))
        vectors = [[float(len(t)), 1.0] for t in req.inputs]
        resp = hub.EmbedResponse(vectors, hub.Usage(prompt_tokens=len(req.inputs)))
        return httpx.Response(200, json=build_embed_response(resp, req.model, timings=TIMINGS))
    if path == "/api/embeddings":
        req = parse_legacy_embeddings_request(body)
        return httpx.Response(200, json=build_legacy_embeddings_response(hub.EmbedResponse([[0.5, 0.5]], hub.Usage())))
    if is_load_request(body):
        load = parse_load_request(body)
        reply = build_load_response(load.model, done_reason=load.done_reason, generate=path == "/api/generate")
        return httpx.Response(200, json=reply)
    chat_path = path == "/api/chat"
    req = parse_chat_request(body) if chat_path else parse_generate_request(body)
    if req.messages[-1].text == "fail midway":
        encoder = ChatStreamEncoder(req.model)
        lines = encoder.encode(REPLY[1]) + [encoder.error(errors.UpstreamError("upstream broke"))]
        return httpx.Response(200, content=b"".join(lines))
    if req.stream:
        encoder = ChatStreamEncoder(req.model) if chat_path else GenerateStreamEncoder(req.model)
        lines = [line for e in REPLY for line in encoder.encode(e)] + encoder.finish(USAGE, TIMINGS)
        return httpx.Response(200, content=b"".join(lines), headers={"content-type": codec.MEDIA_TYPE})
    resp = hub.ChatResponse([hub.Choice(text="It is sunny.", reasoning="Hmm.")], USAGE)
    build = build_chat_response if chat_path else build_generate_response
    return httpx.Response(200, json=build(resp, req.model, timings=TIMINGS))


@pytest.fixture
def client() -> ollama.Client:
    return ollama.Client(host="http://gateway.test", transport=httpx.MockTransport(fake_server))


def test_client_chat(client):
    resp = client.chat(model="gemini-2.5-flash", messages=[{"role": "user", "content": "weather?"}], think=True)
    assert (resp.message.content, resp.message.thinking, resp.done_reason, resp.eval_count) == ("It is sunny.", "Hmm.", "stop", 11)


def test_client_chat_stream(client):
    parts = list(client.chat(model="m", messages=[{"role": "user", "content": "weather?"}], stream=True))
    assert "".join(p.message.content for p in parts) == "It is sunny."
    assert "".join(p.message.thinking or "" for p in parts) == "Hmm."
    assert parts[-1].done and parts[-1].eval_duration == 600


def test_client_chat_with_tools_and_images(client):
    def get_weather(city: str) -> str:
        """Get the weather.

        Args:
            city: The city
        """
        return "sunny"

    msgs = [
        {"role": "user", "content": "look", "images": [PNG]},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ]
    assert client.chat(model="m", messages=msgs, tools=[get_weather]).message.content == "It is sunny."


def test_client_stream_error_line_raises(client):
    stream = client.chat(model="m", messages=[{"role": "user", "content": "fail midway"}], stream=True)
    assert next(stream).message.content == "It is "
    with pytest.raises(ollama.ResponseError) as info:
        next(stream)
    assert info.value.error == "upstream broke"


def test_client_generate(client):
    assert client.generate(model="m", prompt="weather?", system="brief").response == "It is sunny."
    parts = list(client.generate(model="m", prompt="weather?", stream=True))
    assert "".join(p.response for p in parts) == "It is sunny." and parts[-1].done_reason == "stop"


def test_client_load_requests(client):
    assert client.generate(model="m").done_reason == "load"
    assert client.generate(model="m", keep_alive=0).done_reason == "unload"
    assert client.chat(model="m", messages=[]).done_reason == "load"


def test_client_embeddings(client):
    resp = client.embed(model="m", input=["abc", "d"])
    assert [[round(x, 4) for x in v] for v in resp.embeddings] == [[0.9487, 0.3162], [0.7071, 0.7071]]
    assert client.embed(model="m", input=[]).embeddings == []
    assert client.embeddings(model="m", prompt="x").embedding == [0.5, 0.5]


def test_client_list_and_show(client):
    assert [m.model for m in client.list().models] == ["gemini-2.5-flash:latest"]
    shown = client.show("gemini-2.5-flash")
    assert shown.modelinfo["gemini.context_length"] == 1000 and shown.capabilities[0] == "completion"
    with pytest.raises(ollama.ResponseError) as info:
        client.show("nope")
    assert (info.value.status_code, info.value.error) == (404, "model 'nope' not found")
