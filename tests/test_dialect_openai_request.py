"""OpenAI dialect: chat request fields accepted, ignored and rejected (every 400), tools, extras.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import pytest

from proxy_app.core import errors, hub
from proxy_app.dialects.openai import request as codec
from proxy_app.dialects.openai.request import build_error, parse_chat_request
from tests.dialect_helpers import rejected, text
from tests.dialect_openai_helpers import ASSISTANT_CALL, SCHEMA, USER, messages


def chat(**fields) -> hub.ChatRequest:
    return parse_chat_request({"model": "m", "messages": [USER], **fields})


# --- accepted fields ---------------------------------------------------------------------------

ACCEPTED = [
    ({"stream": True}, "stream", True),
    ({"stream": False}, "stream", False),
    ({"stream": True, "stream_options": {"include_usage": True}}, "include_usage", True),
    ({"stream": True, "stream_options": {"include_usage": False}}, "include_usage", False),
    ({"stream_options": {"include_usage": True}}, "include_usage", False),  # only with stream
    ({"max_tokens": 100}, "max_tokens", 100),
    ({"max_completion_tokens": 50}, "max_tokens", 50),
    ({"max_completion_tokens": 50, "max_tokens": 100}, "max_tokens", 50),
    ({"temperature": 0}, "temperature", 0.0),
    ({"temperature": 2}, "temperature", 2.0),
    ({"temperature": 0.7}, "temperature", 0.7),
    ({"top_p": 0.5}, "top_p", 0.5),
    ({"top_p": 1}, "top_p", 1.0),
    ({"top_k": 40}, "top_k", 40),
    ({"top_k": 0}, "top_k", None),
    ({"top_k": -1}, "top_k", None),
    ({"n": 1}, "n", 1),
    ({"n": 8}, "n", 8),
    ({"stop": "END"}, "stop", ["END"]),
    ({"stop": ""}, "stop", []),
    ({"stop": ["a", "", "b"]}, "stop", ["a", "b"]),
    ({"stop": ["a", "b", "c", "d"]}, "stop", ["a", "b", "c", "d"]),
    ({"seed": 2**31 - 1}, "seed", 2**31 - 1),
    ({"seed": -(2**31)}, "seed", -(2**31)),
    ({"presence_penalty": -2}, "presence_penalty", -2.0),
    ({"frequency_penalty": 1.5}, "frequency_penalty", 1.5),
    ({"logprobs": True}, "logprobs", True),
    ({"logprobs": True, "top_logprobs": 0}, "top_logprobs", 0),
    ({"logprobs": True, "top_logprobs": 20}, "top_logprobs", 20),
    ({"temperature": None, "max_tokens": None, "stop": None}, "temperature", None),
    ({"tools": []}, "tools", []),
    ({"modalities": ["text"]}, "stream", False),
] + [({"reasoning_effort": e}, "reasoning_effort", e) for e in codec.REASONING_EFFORTS]


@pytest.mark.parametrize(("fields", "attr", "expected"), ACCEPTED)
def test_accepted_fields(fields, attr, expected):
    assert getattr(chat(**fields), attr) == expected


def test_defaults():
    req = chat()
    assert req == hub.ChatRequest(model="m", messages=[hub.Message("user", [text("hi")])])


IGNORED = {
    "parallel_tool_calls": False,
    "logit_bias": {"50256": -100},
    "user": "u1",
    "metadata": {"a": "b"},
    "store": True,
    "service_tier": "flex",
    "prediction": {"type": "content", "content": "x"},
    "web_search_options": {},
    "verbosity": "low",
    "safety_identifier": "s",
    "prompt_cache_key": "k",
    "prompt_cache_retention": "24h",
    "something_new": [1, 2],
}


@pytest.mark.parametrize(("key", "value"), IGNORED.items())
def test_ignored_fields(key, value):
    assert chat(**{key: value}) == chat()


# --- every 400 ---------------------------------------------------------------------------------

INVALID = [
    # (body overrides, param)
    ({"model": None}, "model"),
    ({"model": ""}, "model"),
    ({"model": 5}, "model"),
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": ["hi"]}, "messages[0]"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"stream": "yes"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"stream_options": "x"}, "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": -5}, "max_tokens"),
    ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"max_completion_tokens": 10, "max_tokens": 0}, "max_tokens"),
    ({"temperature": 2.1}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "1"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_p": -1}, "top_p"),
    ({"top_k": 1.5}, "top_k"),
    ({"top_k": "40"}, "top_k"),
    ({"n": 0}, "n"),
    ({"n": 9}, "n"),
    ({"n": 1.0}, "n"),
    ({"n": 2, "stream": True}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 3}, "stop"),
    ({"stop": {"a": 1}}, "stop"),
    ({"stop": ["a", 1]}, "stop[1]"),
    ({"seed": 2**31}, "seed"),
    ({"seed": -(2**31) - 1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -3}, "frequency_penalty"),
    ({"frequency_penalty": "0"}, "frequency_penalty"),
    ({"logprobs": 1}, "logprobs"),
    ({"logprobs": "true"}, "logprobs"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
    ({"top_logprobs": 5}, "top_logprobs"),
    ({"logprobs": False, "top_logprobs": 5}, "top_logprobs"),
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {}}, "response_format.type"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": "x"}}},
        "response_format.json_schema.schema",
    ),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"name": 5, "schema": {}}}},
        "response_format.json_schema.name",
    ),
    ({"tools": "x"}, "tools"),
    ({"tools": [1]}, "tools[0]"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type"),
    ({"tools": [{"function": {"name": "f"}}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f" * 65}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": 5}}]}, "tools[0].function.description"),
    (
        {"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]},
        "tools[1].function.name",
    ),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": 5}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
    ({"tool_choice": {"type": "x"}}, "tool_choice.type"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.function"),
    ({"tool_choice": {"type": "function", "function": {"name": ""}}}, "tool_choice.function.name"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"reasoning_effort": True}, "reasoning_effort"),
    ({"extra_body": "x"}, "extra_body"),
    ({"extra_body": {"google": "x"}}, "extra_body.google"),
    ({"extra_body": {"google": {"thinking_config": "x"}}}, "extra_body.google.thinking_config"),
    (
        {"extra_body": {"google": {"thinking_config": {"thinking_budget": "lots"}}}},
        "extra_body.google.thinking_config.thinking_budget",
    ),
    (
        {"extra_body": {"google": {"thinking_config": {"thinking_budget": True}}}},
        "extra_body.google.thinking_config.thinking_budget",
    ),
    (
        {"extra_body": {"google": {"thinking_config": {"include_thoughts": "yes"}}}},
        "extra_body.google.thinking_config.include_thoughts",
    ),
    (
        {"extra_body": {"google": {"thinking_config": {"thinking_level": 3}}}},
        "extra_body.google.thinking_config.thinking_level",
    ),
    ({"extra_body": {"google": {"cached_content": 5}}}, "extra_body.google.cached_content"),
    ({"extra_body": {"google": {"safety_settings": "x"}}}, "extra_body.google.safety_settings"),
    ({"extra_body": {"google": {"safety_settings": [1]}}}, "extra_body.google.safety_settings[0]"),
    ({"google": {"thinking_config": {"thinkingBudget": "x"}}}, "google.thinking_config.thinkingBudget"),
    ({"google": []}, "google"),
    (
        {"reasoning_effort": "low", "extra_body": {"google": {"thinking_config": {"thinking_budget": 1}}}},
        "reasoning_effort",
    ),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"modalities": "audio"}, "modalities"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"function_call": "auto"}, "function_call"),
]


@pytest.mark.parametrize(("fields", "param"), INVALID)
def test_invalid_fields(fields, param):
    err = rejected(parse_chat_request, {"model": "m", "messages": [USER], **fields})
    assert err.param == param
    body = build_error(err)
    assert body == {"error": {"message": err.message, "type": "invalid_request_error", "param": param, "code": None}}
    assert err.message  # always a human sentence


@pytest.mark.parametrize("body", [None, [], "x", 3, True])
def test_body_must_be_an_object(body):
    err = rejected(parse_chat_request, body)
    assert (err.param, err.message) == (None, "request body must be a JSON object")


def test_error_messages_are_specific():
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER], "functions": []}).message == (
        "legacy 'functions' is not supported; use tools/tool_choice"
    )
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER], "temperature": 3}).message == (
        "'temperature' must be between 0 and 2, got 3"
    )
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER], "n": 2, "stream": True}).message == (
        "n > 1 is not supported with stream: true"
    )


NUMERIC = [
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
]


@pytest.mark.parametrize("field", NUMERIC)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(field, value):
    err = rejected(parse_chat_request, {"model": "m", "messages": [USER], field: value})
    assert err.param == field
    assert "must be" in err.message


def test_boolean_top_logprobs_rejected():
    err = rejected(parse_chat_request, {"model": "m", "messages": [USER], "logprobs": True, "top_logprobs": True})
    assert err.param == "top_logprobs"


def test_non_finite_and_huge_numbers():
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER], "temperature": float("nan")}).param == (
        "temperature"
    )
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER], "temperature": 10**400}).param == (
        "temperature"
    )
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER], "seed": 10**30}).param == "seed"


WEIRD = [None, True, 0, -1, 1.5, "", "x", [], [1], [{}], {}, {"a": 1}, [None], {"type": None}]
FIELDS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "reasoning_effort",
    "extra_body",
    "google",
    "modalities",
    "audio",
    "functions",
    "function_call",
]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", WEIRD, ids=repr)
def test_weird_values_never_escape_as_other_errors(field, value):
    try:
        parse_chat_request({"model": "m", "messages": [USER], field: value})
    except errors.InvalidRequest as err:
        assert err.status == 400 and err.message


MESSAGE_KEYS = ["role", "content", "tool_calls", "tool_call_id", "name", "function_call"]


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant", "tool", "function"])
@pytest.mark.parametrize("key", MESSAGE_KEYS)
@pytest.mark.parametrize("value", WEIRD, ids=repr)
def test_weird_message_values_never_escape(role, key, value):
    message = {"role": role, "content": "x", "tool_call_id": "call_1", "name": "get_weather", key: value}
    try:
        messages(ASSISTANT_CALL, message)
    except errors.InvalidRequest as err:
        assert err.param and err.param.startswith("messages[1]")


@pytest.mark.parametrize("part_key", ["image_url", "input_audio", "file", "text"])
@pytest.mark.parametrize(
    "value", [*WEIRD, {"url": None}, {"url": 5}, {"data": 1, "format": 2}, {"file_data": 5}], ids=repr
)
def test_weird_parts_never_escape(part_key, value):
    try:
        messages({"role": "user", "content": [{"type": part_key, part_key: value}]})
    except errors.InvalidRequest as err:
        assert err.param.startswith("messages[0].content[0]")


# --- response_format, tools, tool_choice -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"type": "text"}, hub.ResponseFormat("text")),
        ({"type": "json_object"}, hub.ResponseFormat("json_object")),
        (
            {"type": "json_schema", "json_schema": {"name": "thing", "schema": SCHEMA, "strict": True}},
            hub.ResponseFormat("json_schema", schema=SCHEMA, name="thing"),
        ),
        ({"type": "json_schema", "json_schema": {"schema": SCHEMA}}, hub.ResponseFormat("json_schema", schema=SCHEMA)),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, hub.ResponseFormat("json_object", name="x")),
    ],
)
def test_response_format(value, expected):
    assert chat(response_format=value).response_format == expected


TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA, "strict": True},
    },
    {"type": "function", "function": {"name": "get_time"}},
    {"type": "function", "function": {"name": "ns.tool:v1-x", "parameters": None}},
]


def test_tools():
    assert chat(tools=TOOLS).tools == [
        hub.Tool("get_weather", "Weather", SCHEMA),
        hub.Tool("get_time"),
        hub.Tool("ns.tool:v1-x"),
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", hub.ToolChoice("auto")),
        ("none", hub.ToolChoice("none")),
        ("required", hub.ToolChoice("required")),
        ({"type": "function", "function": {"name": "get_time"}}, hub.ToolChoice("required", ["get_time"])),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [
                        {"type": "function", "function": {"name": "get_time"}},
                        {"type": "function", "function": {"name": "get_weather"}},
                    ],
                },
            },
            hub.ToolChoice("auto", ["get_time", "get_weather"]),
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_time"}}],
                },
            },
            hub.ToolChoice("required", ["get_time"]),
        ),
        (None, None),
    ],
)
def test_tool_choice(choice, expected):
    assert chat(tools=TOOLS, tool_choice=choice).tool_choice == expected


@pytest.mark.parametrize("choice", ["auto", "none"])
def test_tool_choice_without_tools_is_ignored(choice):
    assert chat(tool_choice=choice).tool_choice is None
    assert chat(tools=[], tool_choice=choice).tool_choice is None


ALLOWED = "tool_choice.allowed_tools"


@pytest.mark.parametrize(
    ("choice", "param"),
    [
        ({"type": "function", "function": {"name": "nope"}}, "tool_choice"),
        ({"type": "allowed_tools"}, ALLOWED),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "any", "tools": []}}, f"{ALLOWED}.mode"),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto"}}, f"{ALLOWED}.tools"),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}, f"{ALLOWED}.tools"),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "mcp"}]}},
            f"{ALLOWED}.tools[0].type",
        ),
        (
            {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function"}]}},
            f"{ALLOWED}.tools[0].function",
        ),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "nope"}}]},
            },
            "tool_choice",
        ),
    ],
)
def test_bad_tool_choice_with_tools(choice, param):
    err = rejected(parse_chat_request, {"model": "m", "messages": [USER], "tools": TOOLS, "tool_choice": choice})
    assert err.param == param


# --- Gemini extras -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "thinking"),
    [
        (
            {"extra_body": {"google": {"thinking_config": {"thinking_budget": 1024, "include_thoughts": True}}}},
            {"thinkingBudget": 1024, "includeThoughts": True},
        ),
        ({"extra_body": {"google": {"thinking_config": {"thinking_level": "high"}}}}, {"thinkingLevel": "HIGH"}),
        (
            {"google": {"thinking_config": {"thinkingBudget": -1, "includeThoughts": False}}},
            {"thinkingBudget": -1, "includeThoughts": False},
        ),
        (
            {
                "google": {"thinking_config": {"thinking_level": "low"}},
                "extra_body": {"google": {"thinking_config": {"thinking_budget": 0}}},
            },
            {"thinkingBudget": 0},
        ),
        ({"extra_body": {"google": {"thinking_config": {"some_future_key": [1]}}}}, {"someFutureKey": [1]}),
        ({"extra_body": {}}, None),
        ({"extra_body": {"openai": 1}}, None),
    ],
)
def test_thinking_config(fields, thinking):
    assert chat(**fields).thinking_config == thinking


def test_cached_content_and_safety_settings():
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    req = chat(extra_body={"google": {"cached_content": "cachedContents/abc", "safety_settings": settings}})
    assert (req.cached_content, req.safety_settings) == ("cachedContents/abc", settings)
    req = chat(google={"cached_content": "cachedContents/top"})
    assert (req.cached_content, req.safety_settings) == ("cachedContents/top", None)
