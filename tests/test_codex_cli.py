"""Codex CLI (npm @openai/codex, a Rust binary shipped in an optional npm dependency), unmodified,
answers and runs a shell command through the gateway's Responses dialect, on the (fake) Gemini
upstream, with no internet.

`scripts/test.sh` installs the pinned CLI into .cache/codex when npm is available; without it
this test is skipped with the reason printed. Codex runs with HOME and CODEX_HOME in a temp dir,
configured as README's "Codex CLI" section says: a `model_providers` entry with
`wire_api = "responses"` and `web_search = "disabled"` (its built-in web search has no Gemini
counterpart here and gets a 400 naming it).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

CLI = Path(__file__).resolve().parent.parent / ".cache" / "codex" / "node_modules" / ".bin" / "codex"
# A model Codex knows (it then sends apply_patch as a freeform custom tool and a client-executed
# tool_search) and one it does not (fallback tools, with its sub-agent tools in a `namespace` tool).
MODEL, UNKNOWN_MODEL = "gpt-5.5", "gpt-5-codex"
CONFIG = """model = "{model}"
model_provider = "gateway"
web_search = "disabled"

[model_providers.gateway]
name = "LLM gateway"
base_url = "{url}/v1"
env_key = "GATEWAY_API_KEY"
wire_api = "responses"
"""
SKIP_SIGNATURE = "skip_thought_signature_validator"


@pytest.fixture
def codex(mapping, fake_gemini):
    if not CLI.exists():
        pytest.skip(f"Codex CLI not installed at {CLI} (scripts/test.sh installs it when npm is available)")
    mapping(MODEL, "gemini-3-flash-preview")
    mapping(UNKNOWN_MODEL, "gemini-3-flash-preview")
    return CLI


def run_codex(
    gateway_url: str, key: str, tmp_path: Path, *args: str, model: str = MODEL
) -> subprocess.CompletedProcess:
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".codex").mkdir(parents=True)
    work.mkdir(exist_ok=True)
    (home / ".codex" / "config.toml").write_text(CONFIG.format(model=model, url=gateway_url))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home / ".codex"), "GATEWAY_API_KEY": key}
    return subprocess.run(
        [str(CLI), "exec", "--skip-git-repo-check", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def generate_requests(fake):
    return [r for r in fake.requests if ":streamGenerateContent" in r["path"] or ":generateContent" in r["path"]]


@pytest.mark.parametrize("model", [MODEL, UNKNOWN_MODEL])
def test_codex_says_hello_through_the_gateway(codex, gateway_url, api_key, fake_gemini, usage_rows, tmp_path, model):
    result = run_codex(gateway_url, api_key, tmp_path, "Say hello", model=model)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Hello from fake Gemini" in result.stdout
    (sent,) = generate_requests(fake_gemini)
    names = {f["name"] for f in sent["json"]["tools"][0]["functionDeclarations"]}
    assert "exec_command" in names
    if model == MODEL:
        assert {"apply_patch", "tool_search"} <= names
    else:  # its sub-agent tools come in a `namespace` tool, declared upstream as namespace__name
        assert any(name.startswith("multi_agent_v1__") for name in names)
    rows = usage_rows()
    assert [(r.dialect, r.endpoint, r.status, r.requested_model, r.streamed) for r in rows] == [
        ("responses", "responses", 200, model, True)
    ]
    assert rows[0].token_source == "reported" and rows[0].prompt_tokens > 1000  # its long instructions


def test_codex_runs_a_shell_command_and_answers(codex, gateway_url, api_key, fake_gemini, usage_rows, tmp_path):
    fake_gemini.script("tool_calls", on="generate", calls=[("exec_command", {"cmd": "echo made-by-codex > out.txt"})])
    result = run_codex(gateway_url, api_key, tmp_path, "-s", "workspace-write", "Make out.txt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "work" / "out.txt").read_text() == "made-by-codex\n"
    # The fake's unscripted answer to a tool result quotes it: Codex printed the final turn.
    assert "Tool said:" in result.stdout and "Process exited with code 0" in result.stdout
    first, second = generate_requests(fake_gemini)
    call_part, answer = second["json"]["contents"][-2]["parts"][0], second["json"]["contents"][-1]["parts"][0]
    assert call_part["functionCall"] == {"name": "exec_command", "args": {"cmd": "echo made-by-codex > out.txt"}}
    assert call_part["thoughtSignature"] not in (None, SKIP_SIGNATURE)  # store: false; the gateway remembered it
    assert answer["functionResponse"]["name"] == "exec_command"
    rows = usage_rows()
    assert [(r.dialect, r.status, r.streamed) for r in rows] == [("responses", 200, True)] * 2
    assert all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in rows)


def test_codex_applies_a_patch_with_its_freeform_tool(codex, gateway_url, api_key, fake_gemini, usage_rows, tmp_path):
    patch = "*** Begin Patch\n*** Add File: made.txt\n+patched by codex\n*** End Patch\n"
    fake_gemini.script("tool_calls", on="generate", calls=[("apply_patch", {"input": patch})])
    result = run_codex(gateway_url, api_key, tmp_path, "-s", "workspace-write", "Add made.txt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "work" / "made.txt").read_text() == "patched by codex\n"
    assert "Tool said:" in result.stdout
    first, second = generate_requests(fake_gemini)
    assert second["json"]["contents"][-2]["parts"][0]["functionCall"] == {
        "name": "apply_patch",
        "args": {"input": patch},
    }
    assert second["json"]["contents"][-1]["parts"][0]["functionResponse"]["name"] == "apply_patch"
    assert [(r.dialect, r.status) for r in usage_rows()] == [("responses", 200)] * 2


def test_codex_runs_a_tool_search_and_answers(codex, gateway_url, api_key, fake_gemini, usage_rows, tmp_path):
    fake_gemini.script("tool_calls", on="generate", calls=[("tool_search", {"query": "goal"})])
    result = run_codex(gateway_url, api_key, tmp_path, "Find a goal tool")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Tool said:" in result.stdout
    first, second = generate_requests(fake_gemini)
    assert second["json"]["contents"][-2]["parts"][0]["functionCall"] == {
        "name": "tool_search",
        "args": {"query": "goal"},
    }
    answer = second["json"]["contents"][-1]["parts"][0]["functionResponse"]
    assert answer["name"] == "tool_search" and "loaded_tools" in str(answer["response"])
    assert [(r.dialect, r.status) for r in usage_rows()] == [("responses", 200)] * 2


def test_codex_on_an_openai_compatible_upstream(codex, gateway_url, api_key, fake_openai, mapping, tmp_path):
    mapping("codex-compat", "gpt-4o-mini", upstream="compat")
    result = run_codex(gateway_url, api_key, tmp_path, "Say hello", model="codex-compat")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Hello from fake OpenAI" in result.stdout
