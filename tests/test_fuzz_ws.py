"""The fuzzer over the WebSocket chat (ws/chat/): mutated JSON frames (wrong types, huge numbers, deep nesting,
NUL and unicode, junk, binary frames, unknown types) on one authenticated socket of a real gateway process.

Properties, for every frame: a final answer within FRAME_TIMEOUT seconds (started, resumed, done,
cancelled, ended or error), every error as {"type": "error", "code", "message"}, the socket still
open (a bad frame never ends it), and one usage row per frame that a handler refused (a known type
answered with an error) or that was answered (`done`); a frame that is not a JSON object with a
known type (codes invalid_json, invalid_message, unknown_type) is refused before any handler and
leaves no row.
"""

from __future__ import annotations

import collections
import json
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from tests.fuzz_cases import MODEL, PLACEHOLDER, paths_of, raw_value, with_raw
from tests.fuzz_stack import Stack, env_int, seeded

pytestmark = pytest.mark.fuzz
FRAMES = env_int("FUZZ_WS_FRAMES", 3_000)
FRAME_TIMEOUT = 15.0
FINAL = {"started", "resumed", "done", "cancelled", "ended", "error"}
HANDLED = {"start", "resume", "message", "cancel", "end"}
PARSE_REFUSALS = {"invalid_json", "invalid_message", "unknown_type"}  # before any handler: no row
TEMPLATES = [
    {
        "type": "start",
        "model": MODEL,
        "system_instruction": "be brief",
        "generation_config": {"temperature": 0.5, "max_output_tokens": 8},
    },  # noqa: E501
    {"type": "message", "text": "hi"},
    {"type": "message", "text": "hi"},
    {"type": "resume", "chat_id": "{chat_id}"},
    {"type": "cancel"},
    {"type": "end"},
]


@st.composite
def frames(draw, chat_id: str) -> tuple[str | bytes, str]:
    base = json.loads(json.dumps(draw(st.sampled_from(TEMPLATES))).replace("{chat_id}", chat_id))
    kind = draw(st.sampled_from(["valid", "valid", "field", "field", "extra", "junk", "binary", "type"]))
    if kind == "field":
        path = draw(st.sampled_from(paths_of(base)))
        return with_raw(base, path, draw(raw_value())), base["type"] if path != ("type",) else "?"
    if kind == "extra":
        base["extra"] = PLACEHOLDER
        return json.dumps(base).replace(json.dumps(PLACEHOLDER), draw(raw_value())), base["type"]
    if kind == "junk":
        return draw(
            st.sampled_from(["", "{", "[]", "null", '{"type": 5}', "\x00", '{"type": "auth", "key": "x"}'])
        ), "?"
    if kind == "binary":
        return draw(st.binary(max_size=64)), "?"
    if kind == "type":
        return json.dumps({**base, "type": draw(st.sampled_from(["START", "delete", "", "auth", "message\x00"]))}), "?"
    return json.dumps(base), base["type"]


def test_fuzz_the_websocket_chat(tmp_path):
    stack = Stack(tmp_path)
    findings: list[str] = []
    counts: collections.Counter = collections.Counter()
    expected_rows = 0
    started = time.monotonic()
    try:
        with connect(
            f"ws://127.0.0.1:{stack.gateway.port}/ws/chat/",
            additional_headers={"authorization": f"Bearer {stack.key}"},
            max_size=None,
        ) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "ready"
            ws.send(json.dumps({"type": "start", "model": MODEL}))
            chat_id = json.loads(ws.recv(timeout=10))["chat_id"]
            expected_rows_box = [0]

            def exchange(frame, handled: bool) -> None:
                ws.send(frame)
                deadline = time.monotonic() + FRAME_TIMEOUT
                while True:
                    try:
                        event = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
                    except TimeoutError:
                        findings.append(f"no final answer within {FRAME_TIMEOUT} s to {frame!r:.200}")
                        return
                    kind = event.get("type")
                    if kind == "error" and not (
                        isinstance(event.get("code"), str) and isinstance(event.get("message"), str)
                    ):  # noqa: E501
                        findings.append(f"error event of the wrong shape {event!r:.200} for {frame!r:.200}")
                    if kind == "error" and event.get("code") == "internal_error":
                        findings.append(f"internal error {event!r:.200} for {frame!r:.300}")
                    if kind in FINAL:
                        counts[kind] += 1
                        refused_early = event.get("code") in PARSE_REFUSALS
                        if (kind == "error" and handled and not refused_early) or kind == "done":
                            expected_rows_box[0] += 1
                        return

            @settings(
                max_examples=FRAMES,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )  # noqa: E501
            @given(st.data())
            def one(data):
                frame, kind = data.draw(frames(chat_id))
                exchange(frame, kind in HANDLED)

            seeded(one)()
            expected_rows = expected_rows_box[0]
    except Exception as exc:  # the socket went away: the property that matters most
        findings.append(f"socket failed: {exc!r}")
    finally:
        rows = stack.rows("endpoint, status, error_code")
        log = stack.log()
        stack.stop()
    if "Traceback" in log:
        at = log.index("Traceback")
        findings.append("traceback in the gateway log:\n" + log[max(at - 300, 0) : at + 4000])
    ws_rows = [r for r in rows if r[0].startswith("ws.")]
    report = (
        f"ws fuzz: {sum(counts.values())} frames answered in {time.monotonic() - started:.0f} s: {dict(counts)}; "
        f"{len(ws_rows)} usage rows (expected {expected_rows}); findings: {len(findings)}\n" + "\n".join(findings[:20])
    )
    print(report)
    assert sum(counts.values()) >= FRAMES * 0.95, report
    assert not findings, report
    assert len(ws_rows) == expected_rows, report
    assert not [r for r in ws_rows if r[1] >= 500], report
