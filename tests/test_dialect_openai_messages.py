"""OpenAI dialect: chat messages by role, media parts, tool calls and their results.

Pure codec tests (no Django, no DB).
"""

from __future__ import annotations

import pytest

from proxy_app.core import hub
from proxy_app.dialects.openai.request import parse_chat_request
from tests.dialect_helpers import GIF, JPEG, PDF, PNG, WEBP, b64, rejected, text
from tests.dialect_openai_helpers import ASSISTANT_CALL, CALL, USER, messages

# --- roles -------------------------------------------------------------------------------------


def test_system_and_developer_become_system():
    got = messages(
        {"role": "system", "content": "one"},
        {"role": "developer", "content": [{"type": "text", "text": "two"}]},
        USER,
        {"role": "system", "content": "late"},
    )
    assert [(m.role, m.text) for m in got] == [("system", "one"), ("system", "two"), ("user", "hi"), ("system", "late")]


def test_system_rejects_non_text_parts():
    body = {
        "model": "m",
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
                ],
            }
        ],
    }
    err = rejected(parse_chat_request, body)
    assert err.param == "messages[0].content[1].type"


def test_user_parts_keep_order():
    got = messages(
        {
            "role": "user",
            "name": "bob",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64(PNG), "detail": "low"}},
                {"type": "text", "text": "and"},
            ],
        }
    )
    assert got == [
        hub.Message("user", [text("look"), hub.Part("media", mime_type="image/png", data=b64(PNG)), text("and")])
    ]


def test_assistant_text_and_refusal():
    got = messages(
        USER,
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "refusal", "refusal": "no"},
                {"type": "text", "text": ""},
            ],
        },
    )
    assert got[1] == hub.Message("assistant", [text("a"), text("no")])


@pytest.mark.parametrize("content", [None, "", []])
def test_empty_assistant_is_dropped(content):
    assert messages(USER, {"role": "assistant", "content": content}, USER) == [
        hub.Message("user", [text("hi")]),
        hub.Message("user", [text("hi")]),
    ]


def test_assistant_without_content_key_but_calls():
    got = messages(USER, {"role": "assistant", "tool_calls": [CALL]})
    assert got[1] == hub.Message("assistant", [], [hub.ToolCall("call_1", "get_weather", {"city": "Oslo"})])


def test_assistant_rejects_image_parts():
    body = {"model": "m", "messages": [{"role": "assistant", "content": [{"type": "image_url", "image_url": {}}]}]}
    assert rejected(parse_chat_request, body).param == "messages[0].content[0].type"


# --- media -------------------------------------------------------------------------------------


def image(url) -> dict:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("data:image/png;base64," + b64(PNG), hub.Part("media", mime_type="image/png", data=b64(PNG))),
        ("data:IMAGE/JPEG;base64," + b64(JPEG), hub.Part("media", mime_type="image/jpeg", data=b64(JPEG))),
        ("data:image/png;name=a.png;base64," + b64(PNG), hub.Part("media", mime_type="image/png", data=b64(PNG))),
        ("data:;base64," + b64(PNG), hub.Part("media", mime_type="image/png", data=b64(PNG))),
        ("data:;base64," + b64(JPEG), hub.Part("media", mime_type="image/jpeg", data=b64(JPEG))),
        ("data:;base64," + b64(GIF), hub.Part("media", mime_type="image/gif", data=b64(GIF))),
        ("data:;base64," + b64(WEBP), hub.Part("media", mime_type="image/webp", data=b64(WEBP))),
        ("https://example.com/cat.png", hub.Part("media_url", url="https://example.com/cat.png")),
        ("http://example.com/cat.png?x=1", hub.Part("media_url", url="http://example.com/cat.png?x=1")),
        ("HTTPS://EXAMPLE.COM/A.PNG", hub.Part("media_url", url="HTTPS://EXAMPLE.COM/A.PNG")),
    ],
)
def test_images(url, part):
    assert messages(image(url))[0].parts == [part]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:image/png;base64,not base64!", "invalid base64 data"),
        ("data:image/png;base64,abc", "invalid base64 data"),  # bad padding
        ("data:image/png;base64,", "media data must not be empty"),
        ("data:image/png;base64,é", "invalid base64 data"),
        ("data:image/png," + b64(PNG), "expected a data URL of the form data:<mime>;base64,<data>"),
        ("data:image/png;base64", "expected a data URL of the form data:<mime>;base64,<data>"),
        (
            "data:;base64," + b64(b"plain bytes"),
            "could not detect the media type; put it in the data URL (data:image/png;base64,...)",
        ),
        ("ftp://example.com/a.png", "image URL must be a data: URL or an http(s) URL"),
        ("file:///etc/passwd", "image URL must be a data: URL or an http(s) URL"),
        ("cat.png", "image URL must be a data: URL or an http(s) URL"),
    ],
)
def test_bad_images(url, message):
    err = rejected(parse_chat_request, {"model": "m", "messages": [image(url)]})
    assert (err.param, err.message) == ("messages[0].content[0].image_url.url", message)


@pytest.mark.parametrize(
    ("image_url", "param"),
    [
        ("https://x/a.png", "messages[0].content[0].image_url"),
        ({}, "messages[0].content[0].image_url.url"),
        ({"url": 5}, "messages[0].content[0].image_url.url"),
    ],
)
def test_image_url_shape(image_url, param):
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": image_url}]}]}
    assert rejected(parse_chat_request, body).param == param


def audio(data, fmt) -> dict:
    return {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": data, "format": fmt}}]}


@pytest.mark.parametrize(("fmt", "mime"), [("wav", "audio/wav"), ("mp3", "audio/mpeg")])
def test_audio(fmt, mime):
    data = b64(b"RIFF....WAVEfmt ")
    assert messages(audio(data, fmt))[0].parts == [hub.Part("media", mime_type=mime, data=data)]


@pytest.mark.parametrize(
    ("data", "fmt", "param"),
    [
        (b64(b"abc"), "flac", "messages[0].content[0].input_audio.format"),
        (b64(b"abc"), None, "messages[0].content[0].input_audio.format"),
        ("***", "wav", "messages[0].content[0].input_audio.data"),
        (None, "wav", "messages[0].content[0].input_audio.data"),
    ],
)
def test_bad_audio(data, fmt, param):
    assert rejected(parse_chat_request, {"model": "m", "messages": [audio(data, fmt)]}).param == param


def file_part(file) -> dict:
    return {"role": "user", "content": [{"type": "file", "file": file}]}


def test_file_data():
    got = messages(file_part({"file_data": "data:application/pdf;base64," + b64(PDF), "filename": "a.pdf"}))
    assert got[0].parts == [hub.Part("media", mime_type="application/pdf", data=b64(PDF))]
    sniffed = messages(file_part({"file_data": "data:;base64," + b64(PDF)}))
    assert sniffed[0].parts[0].mime_type == "application/pdf"


@pytest.mark.parametrize(
    ("file", "param"),
    [
        ({"file_id": "file-abc"}, "messages[0].content[0].file.file_id"),
        ({"file_id": "file-abc", "file_data": "data:;base64," + b64(PDF)}, "messages[0].content[0].file.file_id"),
        ({}, "messages[0].content[0].file.file_data"),
        ({"file_data": "https://x/a.pdf"}, "messages[0].content[0].file.file_data"),
        ({"file_data": "data:application/pdf;base64,%%%"}, "messages[0].content[0].file.file_data"),
        ("x", "messages[0].content[0].file"),
    ],
)
def test_bad_files(file, param):
    assert rejected(parse_chat_request, {"model": "m", "messages": [file_part(file)]}).param == param


# --- tool calls and results ----------------------------------------------------------------------


def test_tool_call_round_trip_in_history():
    got = messages(
        USER,
        {
            "role": "assistant",
            "content": "let me check",
            "tool_calls": [
                CALL,
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_2", "content": "12:00"},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [{"type": "text", "text": "sunny"}, {"type": "text", "text": " 20C"}],
        },
    )
    assert got[1] == hub.Message(
        "assistant",
        [text("let me check")],
        [hub.ToolCall("call_1", "get_weather", {"city": "Oslo"}), hub.ToolCall("call_2", "get_time", {})],
    )
    assert got[2] == hub.Message("tool", [text("12:00")], tool_call_id="call_2", name="get_time")
    assert got[3] == hub.Message("tool", [text("sunny"), text(" 20C")], tool_call_id="call_1", name="get_weather")
    assert got[3].text == "sunny 20C"


def test_tool_name_comes_from_the_latest_matching_call():
    first = {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "old", "arguments": "{}"}}]}
    got = messages(
        USER,
        first,
        {"role": "tool", "tool_call_id": "call_1", "content": "a"},
        ASSISTANT_CALL,
        {"role": "tool", "tool_call_id": "call_1", "content": "b"},
    )
    assert [m.name for m in got if m.role == "tool"] == ["old", "get_weather"]


@pytest.mark.parametrize(
    ("history", "param", "message"),
    [
        (
            [{"role": "tool", "tool_call_id": "call_9", "content": "x"}],
            "messages[1].tool_call_id",
            "unknown tool_call_id 'call_9': no earlier assistant tool call has it",
        ),
        ([{"role": "tool", "content": "x"}], "messages[1].tool_call_id", "'messages[1].tool_call_id' must be a string"),
        (
            [{"role": "tool", "tool_call_id": "", "content": "x"}],
            "messages[1].tool_call_id",
            "'messages[1].tool_call_id' must not be empty",
        ),
        (
            [ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call_1"}],
            "messages[2].content",
            "'messages[2].content' must be a string or an array of content parts",
        ),
        (
            [ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "image_url"}]}],
            "messages[2].content[0].type",
            "this message accepts only text parts, got 'image_url'",
        ),
    ],
)
def test_bad_tool_results(history, param, message):
    err = rejected(parse_chat_request, {"model": "m", "messages": [USER, *history]})
    assert (err.param, err.message) == (param, message)


def test_tool_result_must_follow_its_call():
    body = {
        "model": "m",
        "messages": [USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"}, ASSISTANT_CALL],
    }
    assert rejected(parse_chat_request, body).param == "messages[1].tool_call_id"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [('{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}), ("", {}), (None, {}), ("{}", {}), ({"a": 1}, {"a": 1})],
)
def test_tool_call_arguments(arguments, expected):
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    assert messages(USER, {"role": "assistant", "tool_calls": [call]})[1].tool_calls[0].arguments == expected


@pytest.mark.parametrize("arguments", ["{bad", "[1, 2]", '"text"', "3", "null", 5, ["a"]])
def test_invalid_tool_call_arguments(arguments):
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    err = rejected(parse_chat_request, {"model": "m", "messages": [USER, {"role": "assistant", "tool_calls": [call]}]})
    assert err.param == "messages[1].tool_calls[0].function.arguments"
    assert "invalid tool call arguments" in err.message or "must be a string" in err.message


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ({"type": "function", "function": {"name": "f"}}, "messages[1].tool_calls[0].id"),
        ({"id": "c", "type": "custom", "function": {"name": "f"}}, "messages[1].tool_calls[0].type"),
        ({"id": "c", "type": "function"}, "messages[1].tool_calls[0].function"),
        ({"id": "c", "type": "function", "function": {"arguments": "{}"}}, "messages[1].tool_calls[0].function.name"),
        ({"id": "c", "function": {"name": "f"}, "extra_content": "x"}, "messages[1].tool_calls[0].extra_content"),
        (
            {"id": "c", "function": {"name": "f"}, "extra_content": {"google": 1}},
            "messages[1].tool_calls[0].extra_content.google",
        ),
        (
            {"id": "c", "function": {"name": "f"}, "extra_content": {"google": {"thought_signature": 1}}},
            "messages[1].tool_calls[0].extra_content.google.thought_signature",
        ),
        ("call", "messages[1].tool_calls[0]"),
    ],
)
def test_bad_tool_calls(call, param):
    body = {"model": "m", "messages": [USER, {"role": "assistant", "tool_calls": [call]}]}
    assert rejected(parse_chat_request, body).param == param


def test_tool_calls_must_be_a_list():
    body = {"model": "m", "messages": [USER, {"role": "assistant", "tool_calls": {"id": "c"}}]}
    assert rejected(parse_chat_request, body).param == "messages[1].tool_calls"


@pytest.mark.parametrize(
    ("extra", "signature"),
    [
        ({"google": {"thought_signature": "sig=="}}, "sig=="),
        ({"vertex": {"thought_signature": "vsig"}}, "vsig"),
        ({"google": {}}, None),
        ({}, None),
        (None, None),
    ],
)
def test_thought_signature_in(extra, signature):
    call = {**CALL, "extra_content": extra}
    got = messages(USER, {"role": "assistant", "tool_calls": [call]})
    assert got[1].tool_calls[0].thought_signature == signature


def test_legacy_function_role():
    got = messages(
        USER,
        {"role": "assistant", "content": None, "function_call": {"name": "get_time", "arguments": '{"tz":"UTC"}'}},
        {"role": "function", "name": "get_time", "content": "12:00"},
        ASSISTANT_CALL,
        {"role": "function", "name": "get_weather", "content": "sunny"},
    )
    assert got[1].tool_calls == [hub.ToolCall("call_gw_fn1", "get_time", {"tz": "UTC"})]
    assert got[2] == hub.Message("tool", [text("12:00")], tool_call_id="call_gw_fn1", name="get_time")
    assert got[4] == hub.Message("tool", [text("sunny")], tool_call_id="call_1", name="get_weather")


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "function", "name": "nope", "content": "x"}, "messages[1].name"),
        ({"role": "function", "content": "x"}, "messages[1].name"),
    ],
)
def test_bad_legacy_function_role(message, param):
    assert rejected(parse_chat_request, {"model": "m", "messages": [USER, message]}).param == param
