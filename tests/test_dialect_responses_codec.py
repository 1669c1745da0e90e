"""Responses dialect codecs as tables: /v1/responses bodies -> hub requests (every 400 names its
field), hub results -> Response objects and stream events.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import orjson
import pytest

from proxy_app.core import errors, hub
from proxy_app.dialects.responses.request import (
    CallKinds,
    ResponseStreamEncoder,
    build_error,
    build_response,
    parse_responses_request,
)
from tests.dialect_helpers import PNG, b64, rejected, text

FN = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": True}
CALL = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}


def parse(**fields):
    return parse_responses_request({"model": "m", "input": "hi", **fields})


ACCEPTED = [
    ({"stream": True}, "stream", True),
    ({"max_output_tokens": 7}, "max_tokens", 7),
    ({"temperature": 0}, "temperature", 0.0),
    ({"top_p": 0.5}, "top_p", 0.5),
    ({"reasoning": {"effort": "high"}}, "reasoning_effort", "high"),
    ({"reasoning": {"effort": "minimal"}}, "reasoning_effort", "minimal"),
    ({"reasoning": {"summary": "auto"}}, "include_thoughts", True),
    ({"reasoning": {"effort": "low"}}, "include_thoughts", False),
    ({"text": {"format": {"type": "text"}}}, "response_format", None),
    ({"text": {"format": {"type": "json_object"}}}, "response_format", hub.ResponseFormat("json_object")),
    (
        {"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": True}}},
        "response_format",
        hub.ResponseFormat("json_schema", schema={"type": "object"}, name="x"),
    ),
    ({"tools": [FN]}, "tools", [hub.Tool("get_weather", "", {"type": "object"})]),
    ({"tools": [FN], "tool_choice": "auto"}, "tool_choice", hub.ToolChoice("auto")),
    ({"tools": [FN], "tool_choice": "none"}, "tool_choice", hub.ToolChoice("none")),
    ({"tools": [FN], "tool_choice": "required"}, "tool_choice", hub.ToolChoice("required")),
    (
        {"tools": [FN], "tool_choice": {"type": "function", "name": "get_weather"}},
        "tool_choice",
        hub.ToolChoice("required", ["get_weather"]),
    ),
    ({"tool_choice": "auto"}, "tool_choice", None),
    ({"metadata": {"a": "b"}, "include": ["reasoning.encrypted_content"], "store": False}, "stream", False),
    ({"prompt_cache_key": "k", "service_tier": "auto", "truncation": "auto", "user": "u"}, "stream", False),
]


@pytest.mark.parametrize(("fields", "attr", "expected"), ACCEPTED)
def test_accepted_fields(fields, attr, expected):
    assert getattr(parse(**fields).chat, attr) == expected


REJECTED = [
    ({"model": ""}, "model"),
    ({"input": None}, "input"),
    ({"input": 5}, "input"),
    ({"input": [5]}, "input[0]"),
    ({"input": []}, "input"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x"}]}]},
        "input[0].content[0].image_url",
    ),
    (
        {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
        "input[0].content[0].file_id",
    ),
    ({"input": [{**CALL, "arguments": "{not json"}]}, "input[0].arguments"),
    ({"input": [{**CALL, "arguments": "[1]"}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "custom", "name": "p", "format": {"type": "regex"}}]}, "tools[0].format.type"),
    ({"tools": [FN, FN]}, "tools[1].name"),
    ({"tools": [{**FN, "name": "bad name!"}]}, "tools[0].name"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [FN], "tool_choice": {"type": "function", "name": "other"}}, "tool_choice"),
    ({"tools": [FN], "tool_choice": "sometimes"}, "tool_choice"),
    ({"temperature": 3}, "temperature"),
    ({"top_p": 2}, "top_p"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"background": True}, "background"),
    ({"stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(("fields", "param"), REJECTED)
def test_rejected_fields_name_their_param(fields, param):
    assert rejected(lambda body: parse_responses_request(body), {"model": "m", "input": "hi", **fields}).param == param


def test_items_become_hub_messages():
    png = b64(PNG)
    req = parse_responses_request(
        {
            "model": "m",
            "instructions": "Rules.",
            "input": [
                {"role": "system", "content": "Sys."},
                {"role": "developer", "content": [{"type": "input_text", "text": "Dev."}]},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": f"data:image/png;base64,{png}", "detail": "auto"},
                        {"type": "input_image", "image_url": "https://example.com/a.png"},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "zzz"},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                },
                {**CALL, "id": "fc_1", "status": "completed"},
                {**CALL, "call_id": "call_2", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": '{"t": 1}'},
                {
                    "type": "function_call_output",
                    "call_id": "call_2",
                    "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
                },
            ],
        }
    ).chat
    roles = [m.role for m in req.messages]
    assert roles == ["system", "system", "system", "user", "assistant", "tool", "tool"]
    assert [m.text for m in req.messages[:3]] == ["Rules.", "Sys.", "Dev."]
    user = req.messages[3]
    assert user.parts[0] == text("look")
    assert (user.parts[1].type, user.parts[1].mime_type, user.parts[1].data) == ("media", "image/png", png)
    assert (user.parts[2].type, user.parts[2].url) == ("media_url", "https://example.com/a.png")
    assistant = req.messages[4]
    assert assistant.text == "Checking."
    assert [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_weather", {}),
    ]
    assert (req.messages[5].tool_call_id, req.messages[5].name, req.messages[5].text) == (
        "call_1",
        "get_weather",
        '{"t": 1}',
    )
    assert req.messages[6].text == "a\nb"


def test_history_comes_first_and_instructions_are_not_inherited():
    history = [{"type": "message", "role": "user", "content": "old"}, CALL]
    parsed = parse_responses_request(
        {"model": "m", "input": [{"type": "function_call_output", "call_id": "call_1", "output": "ok"}]}, history
    )
    assert [m.role for m in parsed.chat.messages] == ["user", "assistant", "tool"]
    assert parsed.input_items == [{"type": "function_call_output", "call_id": "call_1", "output": "ok"}]


ECHO = {"instructions": None, "tools": [], "tool_choice": "auto", "parallel_tool_calls": True}
USAGE = hub.Usage(prompt_tokens=10, completion_tokens=7, reasoning_tokens=3, cached_tokens=4)


@pytest.mark.parametrize(
    ("choice", "status", "reason"),
    [
        (hub.Choice(text="hi"), "completed", None),
        (hub.Choice(text="hi", finish_reason="length"), "incomplete", "max_output_tokens"),
        (hub.Choice(finish_reason="content_filter"), "incomplete", "content_filter"),
        (hub.Choice(tool_calls=[hub.ToolCall("c", "f", {})], finish_reason="tool_calls"), "completed", None),
    ],
)
def test_status_table(choice, status, reason):
    obj = build_response(hub.ChatResponse([choice], USAGE), "m", "resp_1", 1, ECHO)
    assert obj["status"] == status
    assert obj["incomplete_details"] == ({"reason": reason} if reason else None)


def test_build_response_items_and_usage():
    choice = hub.Choice(text="Hello", reasoning="think", tool_calls=[hub.ToolCall("call_9", "f", {"a": 1})])
    obj = build_response(hub.ChatResponse([choice], USAGE), "alias", "resp_1", 123, ECHO)
    assert (obj["id"], obj["object"], obj["created_at"], obj["model"]) == ("resp_1", "response", 123, "alias")
    assert [i["type"] for i in obj["output"]] == ["reasoning", "message", "function_call"]
    assert obj["output"][0]["summary"] == [{"type": "summary_text", "text": "think"}]
    assert obj["output"][1]["content"][0] == {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
    call = obj["output"][2]
    assert (call["call_id"], call["name"], call["arguments"], call["status"]) == ("call_9", "f", '{"a":1}', "completed")
    assert call["id"].startswith("fc_")
    assert obj["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 17,
    }


def events(frames: list[bytes]) -> list[dict]:
    out = []
    for frame in b"".join(frames).split(b"\n\n"):
        if frame:
            name, data = frame.split(b"\n")
            payload = orjson.loads(data.removeprefix(b"data: "))
            assert name == b"event: " + payload["type"].encode()
            out.append(payload)
    return out


def test_stream_encoder_order_indexes_and_final_object():
    enc = ResponseStreamEncoder("m", "resp_1", 1, ECHO)
    frames = enc.encode(hub.StreamEvent([hub.ChoiceDelta(reasoning="hm")]))
    frames += enc.encode(hub.StreamEvent([hub.ChoiceDelta(text="Hel")]))
    frames += enc.encode(hub.StreamEvent([hub.ChoiceDelta(text="lo")]))
    call = hub.ToolCall("call_1", "f", {"x": 1})
    frames += enc.encode(hub.StreamEvent([hub.ChoiceDelta(tool_calls=[call], finish_reason="tool_calls")]))
    frames += enc.finish(USAGE)
    evs = events(frames)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    assert [e["type"] for e in evs] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.get("output_index") for e in evs if e["type"] == "response.output_item.done"] == [0, 1, 2]
    assert evs[12]["text"] == "Hello" and evs[12]["content_index"] == 0
    assert evs[17]["arguments"] == '{"x":1}' and evs[17]["name"] == "f"
    final = evs[-1]["response"]
    assert final["status"] == "completed" and final["usage"]["total_tokens"] == 17
    assert [i["type"] for i in final["output"]] == ["reasoning", "message", "function_call"]
    assert enc.response == final


def test_stream_encoder_incomplete_and_failed():
    enc = ResponseStreamEncoder("m", "resp_1", 1, ECHO)
    evs = events(enc.encode(hub.StreamEvent([hub.ChoiceDelta(text="x", finish_reason="length")])) + enc.finish(None))
    assert evs[-1]["type"] == "response.incomplete"
    assert evs[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}

    enc = ResponseStreamEncoder("m", "resp_2", 1, ECHO)
    evs = events(
        enc.encode(hub.StreamEvent([hub.ChoiceDelta(text="x")])) + [enc.error(errors.RateLimited("slow down"))]
    )
    assert [e["type"] for e in evs[-2:]] == ["error", "response.failed"]
    assert evs[-1]["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert evs[-2]["code"] == "rate_limit_exceeded"
    with pytest.raises(errors.UpstreamError):
        ResponseStreamEncoder("m", "r", 1, ECHO).encode(hub.StreamEvent([hub.ChoiceDelta(finish_reason="error")]))


def test_errors_use_the_openai_body():
    body = build_error(errors.InvalidRequest("bad", param="input"))
    assert body == {"error": {"message": "bad", "type": "invalid_request_error", "param": "input", "code": None}}


def test_custom_tools_are_functions_with_one_input_string():
    grammar = {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}
    parsed = parse(
        tools=[{"type": "custom", "name": "apply_patch", "description": "Patch files.", "format": grammar}],
        tool_choice={"type": "custom", "name": "apply_patch"},
    )
    (tool,) = parsed.chat.tools
    assert tool.parameters["required"] == ["input"] and tool.parameters["properties"]["input"]["type"] == "string"
    assert tool.description.startswith("Patch files.") and "start: /.+/" in tool.description
    assert parsed.calls.custom == frozenset({"apply_patch"})
    assert parsed.chat.tool_choice == hub.ToolChoice("required", ["apply_patch"])
    history = parse_responses_request(
        {
            "model": "m",
            "input": [
                {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": "Done"},
            ],
        }
    ).chat.messages
    assert history[0].tool_calls[0].arguments == {"input": "*** Begin Patch"}
    assert (history[1].role, history[1].name, history[1].text) == ("tool", "apply_patch", "Done")


def test_custom_tool_calls_come_back_as_custom_items():
    call = hub.ToolCall("c1", "apply_patch", {"input": "*** Begin Patch"})
    choice = hub.Choice(tool_calls=[call], finish_reason="tool_calls")
    obj = build_response(hub.ChatResponse([choice], USAGE), "m", "r", 1, ECHO, CallKinds(frozenset({"apply_patch"})))
    item = obj["output"][0]
    assert (item["type"], item["call_id"], item["name"], item["input"]) == (
        "custom_tool_call",
        "c1",
        "apply_patch",
        "*** Begin Patch",
    )
    enc = ResponseStreamEncoder("m", "r", 1, ECHO, CallKinds(frozenset({"apply_patch"})))
    evs = events(enc.encode(hub.StreamEvent([hub.ChoiceDelta(tool_calls=[call])])) + enc.finish(USAGE))
    names = [e["type"] for e in evs]
    assert "response.custom_tool_call_input.delta" in names
    done = next(e for e in evs if e["type"] == "response.custom_tool_call_input.done")
    assert done["input"] == "*** Begin Patch"
    assert evs[-1]["response"]["output"][0]["type"] == "custom_tool_call"


def test_failed_rate_limit_says_when_to_retry():
    enc = ResponseStreamEncoder("m", "r", 1, ECHO)
    evs = events([enc.error(errors.RateLimited("Quota exceeded.", retry_after=12))])
    assert evs[-1]["response"]["error"]["message"] == "Quota exceeded. Please try again in 12s."


def test_images_in_call_outputs_follow_the_run_of_outputs():
    png = b64(PNG)
    image = {"type": "input_image", "image_url": f"data:image/png;base64,{png}"}
    two_calls = [CALL, {**CALL, "call_id": "call_2"}]
    outputs = [
        {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": [{"type": "input_text", "text": "shot"}, image],
        },
        {"type": "function_call_output", "call_id": "call_2", "output": "ok"},
    ]
    messages = parse_responses_request(
        {"model": "m", "input": [*two_calls, *outputs, {"role": "user", "content": "next"}]}
    ).chat.messages
    assert [m.role for m in messages] == ["assistant", "tool", "tool", "user", "user"]
    assert messages[1].text == "shot" and messages[3].parts[0].data == png and messages[4].text == "next"
    bad = {"type": "function_call_output", "call_id": "call_1", "output": [{"type": "input_audio"}]}
    assert rejected(parse_responses_request, {"model": "m", "input": [CALL, bad]}).param == "input[1].output[0].type"


def test_namespace_tools_are_declared_joined_and_their_calls_name_the_namespace():
    # Codex sends its sub-agent tools as {"type": "namespace", "name": "multi_agent_v1", "tools": [...]}.
    space = {"type": "namespace", "name": "agents", "description": "Sub-agents.", "tools": [FN]}
    parsed = parse(tools=[FN, space])
    assert [t.name for t in parsed.chat.tools] == ["get_weather", "agents__get_weather"]
    assert parsed.chat.tools[1].description.startswith("(agents: Sub-agents.)")
    assert parsed.calls.namespaces == {"agents__get_weather": ("agents", "get_weather")}
    call = hub.ToolCall("c1", "agents__get_weather", {"city": "Lima"})
    choice = hub.Choice(tool_calls=[call], finish_reason="tool_calls")
    obj = build_response(hub.ChatResponse([choice], USAGE), "m", "r", 1, ECHO, parsed.calls)
    item = obj["output"][0]
    assert (item["type"], item["name"], item["namespace"]) == ("function_call", "get_weather", "agents")
    enc = ResponseStreamEncoder("m", "r", 1, ECHO, parsed.calls)
    evs = events(enc.encode(hub.StreamEvent([hub.ChoiceDelta(tool_calls=[call])])) + enc.finish(USAGE))
    done = next(e for e in evs if e["type"] == "response.output_item.done")
    assert (done["item"]["name"], done["item"]["namespace"]) == ("get_weather", "agents")
    history = parse_responses_request(
        {
            "model": "m",
            "input": [
                {**CALL, "namespace": "agents"},
                {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
            ],
        }
    ).chat.messages
    assert history[0].tool_calls[0].name == "agents__get_weather" and history[1].name == "agents__get_weather"
    assert "agents__get_weather" not in {t.name for t in parse(tools=[FN]).chat.tools}
    with pytest.raises(errors.InvalidRequest) as info:
        parse(tools=[{"type": "web_search"}])
    assert "web_search" in info.value.message and info.value.param == "tools[0].type"


def test_client_tool_search_is_a_function_and_the_tools_it_loads_are_declared():
    search = {
        "type": "tool_search",
        "execution": "client",
        "description": "Find tools.",
        "parameters": {"type": "object"},
    }
    parsed = parse(tools=[FN, search])
    assert [t.name for t in parsed.chat.tools] == [
        "get_weather",
        "tool_search",
    ] and parsed.calls.search == "tool_search"
    call = hub.ToolCall("c1", "tool_search", {"query": "crm"})
    choice = hub.Choice(tool_calls=[call], finish_reason="tool_calls")
    obj = build_response(hub.ChatResponse([choice], USAGE), "m", "r", 1, ECHO, CallKinds(search="tool_search"))
    (item,) = obj["output"]
    assert {k: item[k] for k in ("type", "call_id", "arguments", "execution")} == {
        "type": "tool_search_call",
        "call_id": "c1",
        "arguments": {"query": "crm"},
        "execution": "client",
    }
    enc = ResponseStreamEncoder("m", "r", 1, ECHO, CallKinds(search="tool_search"))
    evs = events(enc.encode(hub.StreamEvent([hub.ChoiceDelta(tool_calls=[call])])) + enc.finish(USAGE))
    assert [e["type"] for e in evs][2:] == [
        "response.output_item.added",
        "response.output_item.done",
        "response.completed",
    ]
    crm = {"type": "namespace", "name": "crm", "description": "CRM.", "tools": [{**FN, "name": "find"}]}
    later = parse_responses_request(
        {
            "model": "m",
            "tools": [search],
            "input": [
                {"type": "tool_search_call", "call_id": "c1", "arguments": {"query": "crm"}, "execution": "client"},
                {"type": "tool_search_output", "call_id": "c1", "execution": "client", "tools": [crm]},
            ],
        }
    )
    assert [t.name for t in later.chat.tools] == ["tool_search", "crm__find"]
    assert later.calls.namespaces == {"crm__find": ("crm", "find")}
    assert later.chat.messages[0].tool_calls[0].arguments == {"query": "crm"}
    assert (later.chat.messages[1].name, later.chat.messages[1].text) == (
        "tool_search",
        '{"loaded_tools":["crm__find"]}',
    )
    assert rejected(lambda tools: parse(tools=tools), [{"type": "tool_search"}]).param == "tools[0].execution"
