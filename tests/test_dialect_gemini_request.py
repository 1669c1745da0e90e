"""Gemini upstream codec (proxy_app.dialects.gemini): hub messages -> GenerateContentRequest contents,
tool results, thought signatures. No DB.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy_app.core.errors import InvalidRequest
from proxy_app.core.hub import ChatRequest, Message, Part, ToolCall
from proxy_app.upstreams.gemini import codec as gemini
from tests.dialect_gemini_helpers import chat, t, u, user

SKIP = "skip_thought_signature_validator"
PLACEHOLDER = {"role": "user", "parts": [{"text": " "}]}


# ------------------------------------------------------------------------------------------------
# builders


def system(text: str) -> Message:
    return Message(role="system", parts=[Part(type="text", text=text)])


def assistant(text: str = "", *calls: ToolCall) -> Message:
    parts = [Part(type="text", text=text)] if text else []
    return Message(role="assistant", parts=parts, tool_calls=list(calls))


def call(call_id: str, name: str, args: dict[str, Any] | None = None, sig: str | None = None) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments=args or {}, thought_signature=sig)


def tool(call_id: str | None, content: str, name: str | None = "get_weather") -> Message:
    return Message(role="tool", parts=[Part(type="text", text=content)], tool_call_id=call_id, name=name)


def m(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def fc(name: str, args: dict[str, Any] | None = None, call_id: str | None = None, sig: str | None = None) -> dict:
    function_call: dict[str, Any] = {"name": name, "args": args or {}}
    if call_id is not None:
        function_call["id"] = call_id
    part: dict[str, Any] = {"functionCall": function_call}
    if sig is not None:
        part["thoughtSignature"] = sig
    return part


def fr(name: str, response: dict[str, Any], call_id: str | None = None) -> dict:
    function_response: dict[str, Any] = {"name": name, "response": response}
    if call_id is not None:
        function_response["id"] = call_id
    return {"functionResponse": function_response}


# ------------------------------------------------------------------------------------------------
# hub → GenerateContentRequest: messages


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        pytest.param([user("hi")], {"contents": [u(t("hi"))]}, id="one-user"),
        pytest.param(
            [system("be brief"), user("hi")],
            {"contents": [u(t("hi"))], "systemInstruction": {"parts": [t("be brief")]}},
            id="system-first",
        ),
        pytest.param(
            [system("a"), user("hi"), system("b"), assistant("yo"), system("c")],
            {"contents": [u(t("hi")), m(t("yo"))], "systemInstruction": {"parts": [t("a\n\nb\n\nc")]}},
            id="system-anywhere-all-kept",
        ),
        pytest.param(
            [system("only")],
            {"contents": [PLACEHOLDER], "systemInstruction": {"parts": [t("only")]}},
            id="only-system-placeholder",
        ),
        pytest.param([], {"contents": [PLACEHOLDER]}, id="nothing-placeholder"),
        pytest.param([system(""), user("hi")], {"contents": [u(t("hi"))]}, id="empty-system-dropped"),
        pytest.param(
            [user("q1"), assistant("a1"), user("q2")],
            {"contents": [u(t("q1")), m(t("a1")), u(t("q2"))]},
            id="multi-turn",
        ),
        pytest.param([user("a"), user("b")], {"contents": [u(t("a"), t("b"))]}, id="merge-users"),
        pytest.param(
            [user("q"), assistant("a"), assistant("b")],
            {"contents": [u(t("q")), m(t("a"), t("b"))]},
            id="merge-models",
        ),
        pytest.param(
            [user("a"), assistant(""), user("b")],
            {"contents": [u(t("a"), t("b"))]},
            id="empty-assistant-dropped-then-merged",
        ),
        pytest.param([user("", "x", "")], {"contents": [u(t("x"))]}, id="empty-text-parts-dropped"),
        pytest.param([user("")], {"contents": [PLACEHOLDER]}, id="all-empty-placeholder"),
        pytest.param(
            [Message(role="user", parts=[Part("text", text="see"), Part("media", mime_type="image/png", data="iVBO")])],
            {"contents": [u(t("see"), {"inlineData": {"mimeType": "image/png", "data": "iVBO"}})]},
            id="inline-media",
        ),
        pytest.param(
            [assistant("hello"), user("hi")],
            {"contents": [m(t("hello")), u(t("hi"))]},
            id="model-text-first-no-placeholder",
        ),
    ],
)
def test_messages_to_contents(messages: list[Message], expected: dict) -> None:
    assert gemini.build_generate_request(chat(*messages)) == expected


def test_tool_round_trip_keeps_real_ids_and_strips_synthetic_ones() -> None:
    req = chat(
        user("weather in Paris and Rome?"),
        assistant(
            "Let me check.",
            call("call_abc", "get_weather", {"city": "Paris"}, sig="c2ln"),
            call("call_gw_AAAAAAAAAAAAAAAAAAAA", "get_weather", {"city": "Rome"}),
        ),
        tool("call_abc", '{"temp": 21}'),
        tool("call_gw_AAAAAAAAAAAAAAAAAAAA", "sunny"),
        user("thanks"),
    )
    assert gemini.build_generate_request(req) == {
        "contents": [
            u(t("weather in Paris and Rome?")),
            m(
                t("Let me check."),
                fc("get_weather", {"city": "Paris"}, call_id="call_abc", sig="c2ln"),
                fc("get_weather", {"city": "Rome"}),
            ),
            u(fr("get_weather", {"temp": 21}, call_id="call_abc"), fr("get_weather", {"result": "sunny"})),
            u(t("thanks")),  # never merged into the functionResponse turn
        ]
    }


def test_parallel_results_follow_the_call_order_and_resolve_missing_names() -> None:
    req = chat(
        user("go"),
        assistant("", call("id1", "get_weather"), call("id2", "get_time")),
        tool("id2", "12:00", name=None),
        tool("id1", "rain", name=None),
    )
    assert gemini.build_generate_request(req)["contents"] == [
        u(t("go")),
        m(fc("get_weather", call_id="id1"), fc("get_time", call_id="id2")),
        u(fr("get_weather", {"result": "rain"}, call_id="id1"), fr("get_time", {"result": "12:00"}, call_id="id2")),
    ]


def test_system_between_call_and_results_does_not_split_them() -> None:
    req = chat(user("go"), assistant("", call("id1", "get_weather")), system("s"), tool("id1", "ok"))
    assert gemini.build_generate_request(req) == {
        "contents": [u(t("go")), m(fc("get_weather", call_id="id1")), u(fr("get_weather", {"result": "ok"}, "id1"))],
        "systemInstruction": {"parts": [t("s")]},
    }


def test_history_starting_with_a_function_call_gets_a_placeholder_user_turn() -> None:
    req = chat(assistant("", call("id1", "get_weather")), tool("id1", "{}"))
    assert gemini.build_generate_request(req)["contents"] == [
        PLACEHOLDER,
        m(fc("get_weather", call_id="id1")),
        u(fr("get_weather", {}, call_id="id1")),
    ]


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"temp": 21, "unit": "C"}', {"temp": 21, "unit": "C"}),
        ("{}", {}),
        ("[1, 2]", {"result": [1, 2]}),
        ("42", {"result": 42}),
        ("4.5", {"result": 4.5}),
        ('"quoted"', {"result": "quoted"}),
        ("true", {"result": True}),
        ("null", {"result": None}),
        ("sunny, 21°C", {"result": "sunny, 21°C"}),
        ("{not json", {"result": "{not json"}),
        ("", {"result": ""}),
    ],
)
def test_tool_response_wrapping(content: str, response: dict) -> None:
    req = chat(user("q"), assistant("", call("id1", "get_weather")), tool("id1", content))
    assert gemini.build_generate_request(req)["contents"][-1] == u(fr("get_weather", response, call_id="id1"))


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        pytest.param(
            [user("q"), assistant("", call("a", "f")), tool("a", "1"), tool("b", "2")],
            "2 tool result message(s) follow an assistant turn with 1 tool call(s); "
            "send exactly one tool message per tool call",
            id="too-many-results",
        ),
        pytest.param(
            [user("q"), assistant("", call("a", "f"), call("b", "f")), tool("a", "1"), user("next")],
            "1 tool result message(s) follow an assistant turn with 2 tool call(s); "
            "send exactly one tool message per tool call",
            id="too-few-results",
        ),
        pytest.param(
            [user("q"), tool("a", "1")],
            "1 tool result message(s) follow an assistant turn with 0 tool call(s); "
            "send exactly one tool message per tool call",
            id="result-without-call",
        ),
        pytest.param(
            [tool("a", "1")],
            "1 tool result message(s) follow an assistant turn with 0 tool call(s); "
            "send exactly one tool message per tool call",
            id="result-first",
        ),
        pytest.param(
            [user("q"), assistant("", call("a", "f")), tool("zzz", "1", name=None)],
            "tool result 'zzz' names no function",
            id="unresolvable-name",
        ),
    ],
)
def test_tool_result_errors(messages: list[Message], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(*messages))
    assert (info.value.status, info.value.param, info.value.message) == (400, "messages", message)


@pytest.mark.parametrize(
    ("message", "text"),
    [
        pytest.param(
            Message(role="user", parts=[Part(type="media_url", url="https://x/a.png")]),
            "media URLs are not supported here; send the data inline",
            id="media-url",
        ),
        pytest.param(
            Message(role="user", parts=[Part(type="media", data="iVBO")]),
            "inline media needs a MIME type",
            id="media-without-mime",
        ),
        pytest.param(
            Message(role="system", parts=[Part(type="media", mime_type="image/png", data="iVBO")]),
            "system messages may only contain text",
            id="system-media",
        ),
        pytest.param(
            Message(role="assistant", tool_calls=[ToolCall(id="a", name="f", arguments=[1])]),  # type: ignore[arg-type]
            "invalid tool call arguments: must be a JSON object",
            id="arguments-not-object",
        ),
    ],
)
def test_invalid_message_parts(message: Message, text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        gemini.build_generate_request(chat(message))
    assert (info.value.param, info.value.message) == ("messages", text)


# ------------------------------------------------------------------------------------------------
# thought signatures


TWO_STEP_HISTORY = [
    user("q"),
    assistant("", call("a", "f"), call("b", "f")),
    tool("a", "1", name="f"),
    tool("b", "2", name="f"),
    assistant("", call("c", "f", sig="real-sig"), call("d", "f")),
    tool("c", "3", name="f"),
    tool("d", "4", name="f"),
]


@pytest.mark.parametrize(
    ("upstream_model", "first_step_sig"),
    [
        ("gemini-3-pro-preview", SKIP),
        ("gemini-3-flash-preview", SKIP),
        ("models/gemini-3.1-flash-lite", SKIP),
        ("gemini-2.5-flash", None),
        ("gemini-2.5-pro", None),
        ("gemini-2.0-flash", None),
    ],
)
def test_thought_signatures(upstream_model: str, first_step_sig: str | None) -> None:
    body = gemini.build_generate_request(chat(*TWO_STEP_HISTORY, upstream_model=upstream_model))
    models = [c for c in body["contents"] if c["role"] == "model"]
    assert models == [
        m(fc("f", call_id="a", sig=first_step_sig), fc("f", call_id="b")),  # siblings stay unsigned
        m(fc("f", call_id="c", sig="real-sig"), fc("f", call_id="d")),  # real signatures always win
    ]


def test_gemini3_signs_the_first_call_even_after_text() -> None:
    req = chat(
        user("q"),
        assistant("thinking out loud", call("a", "f")),
        tool("a", "1", name="f"),
        upstream_model="gemini-3-pro-preview",
    )
    contents = gemini.build_generate_request(req)["contents"]
    assert contents[1] == m(t("thinking out loud"), fc("f", call_id="a", sig=SKIP))


def test_assistant_text_then_separate_tool_call_message_is_one_model_turn():
    req = ChatRequest(
        model="m",
        upstream_model="gemini-2.5-flash",
        messages=[
            Message(role="user", parts=[Part(type="text", text="q")]),
            Message(role="assistant", parts=[Part(type="text", text="Let me check.")]),
            Message(role="assistant", tool_calls=[ToolCall(id="call_1", name="f", arguments={"a": 1})]),
            Message(role="tool", tool_call_id="call_1", name="f", parts=[Part(type="text", text="ok")]),
        ],
    )
    contents = gemini.build_generate_request(req)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [
        {"text": "Let me check."},
        {"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}},
    ]
