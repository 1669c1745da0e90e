"""Claude Code (npm @anthropic-ai/claude-code), unmodified, answers and runs a tool through the
gateway's Anthropic dialect, on the (fake) Gemini upstream, with no internet.

`scripts/test.sh` installs the pinned CLI into .cache/claude-code when npm is available; without
it this test is skipped with the reason printed. The CLI runs with HOME in a temp dir (nothing
on the box is read or written) and its non-essential traffic (telemetry, error reports, update
checks) turned off; the model ids it asks for are mapped to a Gemini 3 model.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.anthropic_helpers import generate_requests

pytestmark = pytest.mark.django_db(transaction=True)

CLI = Path(__file__).resolve().parent.parent / ".cache" / "claude-code" / "node_modules" / ".bin" / "claude"
MAIN_MODEL, SMALL_MODEL = "claude-sonnet-4-6", "claude-haiku-4-5"  # named via ANTHROPIC_MODEL & co.
SKIP_SIGNATURE = "skip_thought_signature_validator"


@pytest.fixture
def claude(mapping, fake_gemini):
    if not CLI.exists():
        pytest.skip(f"Claude Code not installed at {CLI} (scripts/test.sh installs it when npm is available)")
    for name in (MAIN_MODEL, SMALL_MODEL):
        mapping(name, "gemini-3-flash-preview")
    return CLI


def run_claude(gateway_url: str, key_env: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway_url,
        **key_env,
        "ANTHROPIC_MODEL": MAIN_MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": SMALL_MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": SMALL_MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    return subprocess.run(
        [str(CLI), "-p", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def test_claude_code_says_hello_through_the_gateway(claude, gateway_url, api_key, fake_gemini, usage_rows, tmp_path):
    result = run_claude(gateway_url, {"ANTHROPIC_AUTH_TOKEN": api_key}, tmp_path, "Say hello")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Hello from fake Gemini" in result.stdout
    (sent,) = generate_requests(fake_gemini)
    assert ":streamGenerateContent" in sent["path"] and sent["headers"]["x-goog-api-key"] == "test-upstream-key"
    assert {"Bash", "Write", "Read", "Edit"} <= {f["name"] for f in sent["json"]["tools"][0]["functionDeclarations"]}
    rows = usage_rows()
    assert [(r.dialect, r.status, r.requested_model, r.streamed) for r in rows] == [
        ("anthropic", 200, MAIN_MODEL, True)
    ]
    assert rows[0].token_source == "reported" and rows[0].prompt_tokens > 1000  # its long system prompt


def test_claude_code_runs_its_write_tool_and_answers(claude, gateway_url, api_key, fake_gemini, usage_rows, tmp_path):
    target = tmp_path / "work" / "hello.txt"
    fake_gemini.script(
        "tool_calls", on="generate", calls=[("Write", {"file_path": str(target), "content": "hi from the agent\n"})]
    )
    result = run_claude(
        gateway_url, {"ANTHROPIC_API_KEY": api_key}, tmp_path, "Write hello.txt", "--allowedTools", "Write"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert target.read_text() == "hi from the agent\n"
    # The fake's unscripted answer to a tool result quotes it: Claude Code printed the final turn.
    assert "Tool said:" in result.stdout and "File created successfully" in result.stdout
    first, second = generate_requests(fake_gemini)
    call_part = second["json"]["contents"][-2]["parts"][0]
    assert call_part["functionCall"]["name"] == "Write"
    # Claude Code sends the tool result back within ~150 ms: the Gemini 3 signature still returns.
    assert call_part["thoughtSignature"] not in (None, SKIP_SIGNATURE)
    assert second["json"]["contents"][-1]["parts"][0]["functionResponse"]["name"] == "Write"
    rows = usage_rows()
    assert [(r.dialect, r.status, r.streamed) for r in rows] == [("anthropic", 200, True)] * 2
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in rows)
