"""Ollama dialect: request bodies (parse_body) and /api/chat fields, tool calls and results, 400s.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import re

import pytest

from proxy_app.core import hub
from proxy_app.dialects.ollama.request import parse_body, parse_chat_request
from tests.dialect_helpers import GIF, JPEG, PDF, PNG, WEBP, b64, rejected, text
from tests.dialect_ollama_helpers import USER

SYNTHETIC_ID = re.compile(r"call_gw_[A-Za-z0-9]{20}")


def chat(**fields) -> hub.ChatRequest:
    return parse_chat_request({"model": "m", "messages": [USER], **fields})


def messages(*msgs) -> list[hub.Message]:
    return parse_chat_request({"model": "m", "messages": list(msgs)}).messages


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


@pytest.mark.parametrize(
    ("raw", "mime"), [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")]
)
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
    (
        {"model": "m", "messages": [{"role": "developer", "content": "x"}]},
        "messages[0].role",
        "'messages[0].role' must be one of system, user, assistant, tool",
    ),
    (
        {"model": "m", "messages": [{"content": "x"}]},
        "messages[0].role",
        "'messages[0].role' must be one of system, user, assistant, tool",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
        "messages[0].content",
        "'messages[0].content' must be a string",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": {}}]},
        "messages[0].tool_calls",
        "'messages[0].tool_calls' must be an array",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [1]}]},
        "messages[0].tool_calls[0]",
        "'messages[0].tool_calls[0]' must be an object",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{}]}]},
        "messages[0].tool_calls[0].function",
        "'messages[0].tool_calls[0].function' must be an object",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]},
        "messages[0].tool_calls[0].function.name",
        "'messages[0].tool_calls[0].function.name' must be a string",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": ""}}]}]},
        "messages[0].tool_calls[0].function.name",
        "'messages[0].tool_calls[0].function.name' must not be empty",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}],
        },
        "messages[0].tool_calls[0].function.arguments",
        "invalid tool call arguments: expected a JSON object",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}],
        },
        "messages[0].tool_calls[0].function.arguments",
        "invalid tool call arguments: expected a JSON object",
    ),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": 5, "function": {"name": "f"}}]}]},
        "messages[0].tool_calls[0].id",
        "'messages[0].tool_calls[0].id' must be a string",
    ),
    (
        {"model": "m", "messages": [assistant(call("f")), {"role": "tool", "tool_call_id": 1}]},
        "messages[1].tool_call_id",
        "'messages[1].tool_call_id' must be a string",
    ),
    ({"model": "m", "messages": M, "stream": "yes"}, "stream", "'stream' must be a boolean"),
    ({"model": "m", "messages": M, "format": "xml"}, "format", "'format' must be \"json\" or a JSON schema object"),
    ({"model": "m", "messages": M, "format": 1}, "format", "'format' must be \"json\" or a JSON schema object"),
    ({"model": "m", "messages": M, "options": []}, "options", "'options' must be an object"),
    (
        {"model": "m", "messages": M, "options": {"temperature": "hot"}},
        "options.temperature",
        "'options.temperature' must be a number",
    ),
    (
        {"model": "m", "messages": M, "options": {"temperature": True}},
        "options.temperature",
        "'options.temperature' must be a number",
    ),
    (
        {"model": "m", "messages": M, "options": {"num_predict": "10"}},
        "options.num_predict",
        "'options.num_predict' must be a number",
    ),
    ({"model": "m", "messages": M, "options": {"top_k": [1]}}, "options.top_k", "'options.top_k' must be a number"),
    (
        {"model": "m", "messages": M, "options": {"seed": 2**40}},
        "options.seed",
        "'options.seed' must be at most 2147483647",
    ),
    ({"model": "m", "messages": M, "options": {"stop": [1]}}, "options.stop[0]", "'options.stop[0]' must be a string"),
    ({"model": "m", "messages": M, "options": {"stop": 5}}, "options.stop", "'options.stop' must be an array"),
    (
        {"model": "m", "messages": M, "think": "extreme"},
        "think",
        '\'think\' must be true, false, "low", "medium", "high" or "max"',
    ),
    (
        {"model": "m", "messages": M, "think": 1},
        "think",
        '\'think\' must be true, false, "low", "medium", "high" or "max"',
    ),
    ({"model": "m", "messages": M, "logprobs": "yes"}, "logprobs", "'logprobs' must be a boolean"),
    ({"model": "m", "messages": M, "top_logprobs": 21}, "top_logprobs", "top_logprobs must be between 0 and 20"),
    ({"model": "m", "messages": M, "top_logprobs": -1}, "top_logprobs", "top_logprobs must be between 0 and 20"),
    ({"model": "m", "messages": M, "top_logprobs": 2.5}, "top_logprobs", "'top_logprobs' must be an integer"),
    ({"model": "m", "messages": M, "tools": {}}, "tools", "'tools' must be an array"),
    (
        {"model": "m", "messages": M, "tools": [{"type": "retrieval"}]},
        "tools[0].type",
        "only function tools are supported, got 'retrieval'",
    ),
    (
        {"model": "m", "messages": M, "tools": [{"type": "function"}]},
        "tools[0].function",
        "'tools[0].function' must be an object",
    ),
    (
        {"model": "m", "messages": M, "tools": [{"function": {"name": "a b"}}]},
        "tools[0].function.name",
        "function names may use only a-z, A-Z, 0-9, _ . : - and at most 64 characters",
    ),
    (
        {"model": "m", "messages": M, "tools": [{"function": {"name": "f"}}, {"function": {"name": "f"}}]},
        "tools[1].function.name",
        "duplicate function name 'f'",
    ),
    (
        {"model": "m", "messages": M, "tools": [{"function": {"name": "f", "parameters": "x"}}]},
        "tools[0].function.parameters",
        "'tools[0].function.parameters' must be an object",
    ),
]


@pytest.mark.parametrize(("body", "param", "message"), REJECTED)
def test_chat_rejects(body, param, message):
    err = rejected(parse_chat_request, body)
    assert (err.param, err.message) == (param, message)
