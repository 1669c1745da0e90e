#!/usr/bin/env bash
# The whole suite: once on SQLite (the embedded default), then the database tests again on
# real PostgreSQL when one answers (TEST_POSTGRES_URL, default the local server).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export GATEWAY_VAR_DIR=${GATEWAY_VAR_DIR:-$(mktemp -d)}

# The coding-agent end-to-end tests need the real CLIs (npm); pinned, installed once into .cache/.
install_cli() {  # install_cli DIR PACKAGE@VERSION BIN TEST
  if [ ! -x "$1/node_modules/.bin/$3" ]; then
    if command -v npm >/dev/null 2>&1; then
      echo "== installing $2 into $1 (for $4)"
      mkdir -p "$1"
      npm install --prefix "$1" --no-audit --no-fund --silent "$2" \
        || echo "could not install $2: $4 will be skipped"
    else
      echo "npm not found: $4 will be skipped"
    fi
  fi
}
install_cli .cache/gemini-cli @google/gemini-cli@0.61.0 gemini tests/test_gemini_cli.py
install_cli .cache/claude-code @anthropic-ai/claude-code@2.1.332 claude tests/test_claude_code.py
install_cli .cache/codex @openai/codex@0.171.0 codex tests/test_codex_cli.py

# The SSO test runs a real OpenID Connect provider (npm's oidc-provider, pinned) in tests/oidc/provider.mjs.
OIDC_DIR=.cache/oidc-provider
if [ ! -d "$OIDC_DIR/node_modules/oidc-provider" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "== installing oidc-provider@9.13.3 into $OIDC_DIR (for tests/test_sso.py)"
    mkdir -p "$OIDC_DIR"
    npm install --prefix "$OIDC_DIR" --no-audit --no-fund --silent oidc-provider@9.13.3 \
      || echo "could not install oidc-provider: the SSO test will be skipped"
  else
    echo "npm not found: the SSO test will be skipped"
  fi
fi

# The browser tests drive Debian's Chromium (no browser download); install it when we can.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's chromium (for the browser tests)"
    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) \
      || echo "could not install chromium: the browser tests will be skipped"
  else
    echo "chromium not found and cannot be installed here: the browser tests will be skipped"
  fi
fi

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Debian's nginx (for tests/test_deploy.py: nginx in front of two gateway processes)"
    (apt-get install -y -q nginx >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nginx >/dev/null 2>&1)) \
      || echo "could not install nginx: the deploy test will be skipped"
  else
    echo "nginx not found and cannot be installed here: the deploy test will be skipped"
  fi
fi

echo "== ruff: lint and format (configured in pyproject.toml)"
"$BIN/ruff" check .
"$BIN/ruff" format --check .

echo "== test suite on SQLite"
env -u DATABASE_URL "$BIN/pytest" "$@"

PG_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if "$BIN/python" - "$PG_URL" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://", 1), connect_timeout=3).close()
except Exception as exc:
    print(f"SKIPPED the PostgreSQL pass: no PostgreSQL at {sys.argv[1]} ({type(exc).__name__}: {exc})")
    sys.exit(1)
PY
then
  echo "== database tests on PostgreSQL ($PG_URL)"
  DATABASE_URL="$PG_URL" "$BIN/pytest" -m django_db "$@"
fi
