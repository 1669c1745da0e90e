"""Anthropic dialect, inbound: /v1/messages bodies -> hub requests, as tables (every 400 names its field).

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import pytest

from proxy_app.core import hub
from proxy_app.dialects.anthropic.request import parse_count_tokens_request, parse_messages_request
from tests.dialect_helpers import PDF, PNG, b64, rejected, text

USER = {"role": "user", "content": "hi"}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}
TOOL = {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}


def parse(**fields) -> hub.ChatRequest:
    return parse_messages_request({"model": "m", "max_tokens": 100, "messages": [USER], **fields})


ACCEPTED = [
    ({"stream": True}, "stream", True),
    ({"max_tokens": 7}, "max_tokens", 7),
    ({"temperature": 0}, "temperature", 0.0),
    ({"temperature": 1}, "temperature", 1.0),
    ({"top_p": 0.5}, "top_p", 0.5),
    ({"top_k": 40}, "top_k", 40),
    ({"top_k": 0}, "top_k", None),
    ({"stop_sequences": ["END", ""]}, "stop", ["END"]),
    ({"metadata": {"user_id": "u"}, "service_tier": "auto", "context_management": {}}, "stream", False),
    ({"output_config": {"effort": "high"}}, "reasoning_effort", "high"),
    ({"thinking": {"type": "disabled"}}, "thinking_config", None),
    ({"thinking": {"type": "adaptive"}}, "include_thoughts", True),
    ({"thinking": {"type": "adaptive", "display": "omitted"}}, "include_thoughts", False),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}, "reasoning_effort", "low"),
    ({"thinking": {"type": "disabled"}}, "reasoning_effort", None),
    ({"thinking": {"type": "enabled", "budget_tokens": 64}}, "reasoning_effort", "low"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2000}, "reasoning_effort", "low"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1025}, "max_tokens": 9000}, "reasoning_effort", "medium"),
    ({"thinking": {"type": "enabled", "budget_tokens": 31999}, "max_tokens": 64000}, "reasoning_effort", "high"),
    ({"thinking": {"type": "enabled", "budget_tokens": 64}}, "include_thoughts", True),
    ({"thinking": {"type": "enabled", "budget_tokens": 64}}, "thinking_config", None),  # never a raw config
    (
        {"thinking": {"type": "enabled", "budget_tokens": 10}, "output_config": {"effort": "max"}},
        "reasoning_effort",
        "max",
    ),
]


@pytest.mark.parametrize(("fields", "attr", "expected"), ACCEPTED)
def test_accepted_fields(fields, attr, expected):
    assert getattr(parse(**fields), attr) == expected


REJECTED = [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": "10"}, "max_tokens"),
    ({"model": ""}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "messages[0].content[0].type"),
    ({"temperature": 1.5}, "temperature"),
    ({"top_p": -1}, "top_p"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"system": [{"type": "image"}]}, "system[0].type"),
    ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
    ({"tools": [{"name": "bad name", "input_schema": SCHEMA}]}, "tools[0].name"),
    ({"tools": [TOOL, TOOL]}, "tools[1].name"),
    ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "sometimes"}, "tools": [TOOL]}, "tool_choice.type"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),
    ({"tool_choice": {"type": "tool", "name": "other"}, "tools": [TOOL]}, "tool_choice.name"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),  # not < max_tokens
    ({"thinking": {"type": "on"}}, "thinking.type"),
    ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
    ({"output_config": {"format": {"type": "xml"}}}, "output_config.format.type"),
]


@pytest.mark.parametrize(("fields", "param"), REJECTED)
def test_rejected_fields_name_their_param(fields, param):
    body = {"model": "m", "max_tokens": 100, "messages": [USER], **fields}
    body = {k: v for k, v in body.items() if v is not None}
    assert rejected(parse_messages_request, body).param == param


def test_system_string_and_blocks_become_system_messages():
    assert parse(system="Be brief.").messages[0] == hub.Message("system", [text("Be brief.")])
    blocks = [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "B"}]
    assert parse(system=blocks).messages[:2] == [hub.Message("system", [text("A")]), hub.Message("system", [text("B")])]
    assert parse(system="").messages == [hub.Message("user", [text("hi")])]


def test_tools_and_tool_choice():
    req = parse(tools=[TOOL], tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})
    assert req.tools == [hub.Tool("get_weather", "Weather", SCHEMA)]
    assert req.tool_choice == hub.ToolChoice("required", ["get_weather"])
    assert parse(tools=[TOOL], tool_choice={"type": "any"}).tool_choice == hub.ToolChoice("required")
    assert parse(tools=[TOOL], tool_choice={"type": "none"}).tool_choice == hub.ToolChoice("none")
    assert parse(tools=[TOOL], tool_choice={"type": "auto"}).tool_choice == hub.ToolChoice("auto")
    assert parse(tool_choice={"type": "auto"}).tool_choice is None
    assert parse(tools=[{**TOOL, "type": "custom"}]).tools[0].name == "get_weather"


def test_json_schema_output_format():
    req = parse(output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    assert req.response_format == hub.ResponseFormat("json_schema", schema=SCHEMA)


def test_user_blocks_images_and_documents():
    content = [
        {"type": "text", "text": "look"},
        {"type": "text", "text": ""},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}},
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "n"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "c"}]}},
    ]
    (message,) = parse(messages=[{"role": "user", "content": content}]).messages
    assert message.parts == [
        text("look"),
        hub.Part("media", mime_type="image/png", data=b64(PNG)),
        hub.Part("media_url", url="https://example.com/a.png"),
        hub.Part("media", mime_type="application/pdf", data=b64(PDF)),
        text("Notes\n\nn"),
        text("c"),
    ]


@pytest.mark.parametrize(
    ("source", "param"),
    [
        ({"type": "base64", "media_type": "image/tiff", "data": b64(PNG)}, "source.media_type"),
        ({"type": "base64", "media_type": "image/png", "data": "not base64!"}, "source.data"),
        ({"type": "url", "url": "file:///etc/passwd"}, "source.url"),
        ({"type": "file", "file_id": "f"}, "source.type"),
    ],
)
def test_bad_image_sources(source, param):
    body = {
        "model": "m",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": [{"type": "image", "source": source}]}],
    }
    assert rejected(parse_messages_request, body).param == f"messages[0].content[0].{param}"


def test_tool_use_and_tool_results():
    req = parse(
        tools=[TOOL],
        messages=[
            USER,
            {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, CALL]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "thanks"},
                ],
            },
        ],
    )
    assert req.messages[1] == hub.Message(
        "assistant", [text("Let me check.")], tool_calls=[hub.ToolCall("toolu_1", "get_weather", {"city": "Paris"})]
    )
    assert req.messages[2] == hub.Message("tool", [text("sunny")], tool_call_id="toolu_1", name="get_weather")
    assert req.messages[3] == hub.Message("user", [text("thanks")])


RESULT_CONTENT = [
    ({}, ""),
    ({"content": ""}, ""),
    ({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "a\nb"),
    ({"content": "boom", "is_error": True}, '{"error":"boom"}'),
    ({"content": '{"temp": 3}'}, '{"temp": 3}'),
]


@pytest.mark.parametrize(("fields", "expected"), RESULT_CONTENT)
def test_tool_result_content(fields, expected):
    result = {"type": "tool_result", "tool_use_id": "toolu_1", **fields}
    req = parse(messages=[USER, {"role": "assistant", "content": [CALL]}, {"role": "user", "content": [result]}])
    assert req.messages[2].text == expected and req.messages[2].role == "tool"


def test_tool_result_image_follows_as_user_content():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "shot"}, image]}
    req = parse(messages=[USER, {"role": "assistant", "content": [CALL]}, {"role": "user", "content": [result]}])
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "user"]
    assert req.messages[3].parts[0].type == "media"


def test_unknown_tool_use_id_is_rejected():
    result = {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}
    body = {"model": "m", "max_tokens": 9, "messages": [USER, {"role": "user", "content": [result]}]}
    assert rejected(parse_messages_request, body).param == "messages[1].content[0].tool_use_id"


def test_thinking_blocks_keep_only_the_gateway_signature():
    assistant = [
        {"type": "thinking", "thinking": "hmm", "signature": "gw1.SIG"},
        CALL,
        {"type": "thinking", "thinking": "more", "signature": "anthropic-opaque"},
        {**CALL, "id": "toolu_2"},
        {"type": "redacted_thinking", "data": "xyz"},
    ]
    (call_1, call_2) = parse(messages=[USER, {"role": "assistant", "content": assistant}]).messages[1].tool_calls
    assert (call_1.thought_signature, call_2.thought_signature) == ("SIG", None)
    only_thinking = [{"type": "thinking", "thinking": "x", "signature": "gw1.S"}]
    assert len(parse(messages=[USER, {"role": "assistant", "content": only_thinking}, USER]).messages) == 2


def test_consecutive_turns_and_system_role_turns():
    req = parse(messages=[USER, USER, {"role": "system", "content": "mid"}, {"role": "assistant", "content": "pre"}])
    assert [m.role for m in req.messages] == ["user", "user", "system", "assistant"]


def test_count_tokens_needs_no_max_tokens():
    req = parse_count_tokens_request({"model": "m", "system": "s", "messages": [USER], "tools": [TOOL]})
    assert req.max_tokens is None and req.tools[0].name == "get_weather" and req.messages[0].role == "system"
    assert rejected(parse_count_tokens_request, {"model": "m"}).param == "messages"
