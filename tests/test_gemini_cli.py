"""The Gemini CLI (npm @google/gemini-cli), unmodified, answers a prompt through the gateway, on a
Gemini upstream and on an OpenAI-compatible one (the earlier logging proxy's use case).

`scripts/test.sh` installs the pinned CLI into .cache/gemini-cli when npm is available; without
it this test is skipped with the reason printed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

CLI = Path(__file__).resolve().parent.parent / ".cache" / "gemini-cli" / "node_modules" / ".bin" / "gemini"
# The model names CLI 0.61 asks for (main model, its router's choice, its classifier).
CLI_MODELS = ["gemini-3.1-pro-preview", "gemini-3.8-flash", "gemini-3.8-pro", "gemini-3.5-flash-lite"]


def run_cli(gateway_url: str, key: str, tmp_path: Path) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "gemini-api-key"}}, "telemetry": {"enabled": false},'
        ' "privacy": {"usageStatisticsEnabled": false}}'
    )
    env = {
        **os.environ,
        "HOME": str(home),
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GOOGLE_GEMINI_BASE_URL": gateway_url,
        "GEMINI_API_KEY": key,
    }
    return subprocess.run(
        [str(CLI), "-p", "Say hello"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def cli():
    if not CLI.exists():
        pytest.skip(f"Gemini CLI not installed at {CLI} (scripts/test.sh installs it when npm is available)")
    return CLI


@pytest.mark.parametrize("upstream", ["gemini", "openai-compatible"])
def test_gemini_cli_answers_through_the_gateway(
    cli, gateway_url, api_key, fake_gemini, fake_openai, mapping, usage_rows, tmp_path, upstream
):
    for name in CLI_MODELS:
        if upstream == "gemini":
            mapping(name, "gemini-3-flash-preview")
        else:
            mapping(name, "gpt-4o-mini", upstream="compat")
    result = run_cli(gateway_url, api_key, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    expected = "Hello from fake Gemini" if upstream == "gemini" else "Hello from fake OpenAI"
    assert expected in result.stdout
    rows = usage_rows()
    assert rows and all(r.dialect == "gemini" and r.status == 200 for r in rows)
    assert any(r.streamed for r in rows)
