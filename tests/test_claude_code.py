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


def test_claude_code_on_an_openai_compatible_upstream(claude, gateway_url, api_key, fake_openai, mapping, tmp_path):
    mapping("claude-compat", "gpt-4o-mini", upstream="compat")
    result = run_claude(gateway_url, {"ANTHROPIC_API_KEY": api_key}, tmp_path, "Say hello", "--model", "claude-compat")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Hello from fake OpenAI" in result.stdout


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


def test_claude_code_runs_its_tools_over_two_steps_and_answers(
    claude, gateway_url, api_key, fake_gemini, usage_rows, tmp_path
):
    work = tmp_path / "work"
    writes = [("Write", {"file_path": str(work / name), "content": name[0]}) for name in ("a.txt", "b.txt")]
    fake_gemini.script("tool_calls", on="generate", calls=writes)  # two calls in one step
    fake_gemini.script("tool_calls", on="generate", calls=[("Bash", {"command": "cat a.txt b.txt > c.txt"})])
    result = run_claude(
        gateway_url, {"ANTHROPIC_API_KEY": api_key}, tmp_path, "Make c.txt", "--allowedTools", "Write,Bash"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [(work / n).read_text() for n in ("a.txt", "b.txt", "c.txt")] == ["a", "b", "ab"]
    # The fake's unscripted answer to a tool result quotes it: Claude Code printed the final turn.
    assert "Tool said:" in result.stdout and "Bash completed with no output" in result.stdout
    first, second, third = generate_requests(fake_gemini)
    step1, answers1, step2, answers2 = third["json"]["contents"][-4:]
    assert [p["functionCall"]["name"] for p in step1["parts"]] == ["Write", "Write"]
    assert [p["functionResponse"]["name"] for p in answers1["parts"]] == ["Write", "Write"]
    assert step2["parts"][0]["functionCall"] == {"name": "Bash", "args": {"command": "cat a.txt b.txt > c.txt"}}
    assert answers2["parts"][0]["functionResponse"]["name"] == "Bash"
    # Claude Code sends each tool result back within ~150 ms: the Gemini 3 signatures still return.
    for step in (step1, step2):
        assert step["parts"][0]["thoughtSignature"] not in (None, SKIP_SIGNATURE)
    rows = usage_rows()
    assert [(r.dialect, r.status, r.streamed) for r in rows] == [("anthropic", 200, True)] * 3
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in rows)
