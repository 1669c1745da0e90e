#!/usr/bin/env bash
# `make demo`: the whole path without a Gemini key. Starts the test suite's fake Gemini upstream
# beside the gateway (own SQLite file under var/demo), issues a demo key, prints what to try.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
FAKE_PORT=${FAKE_PORT:-8001}

export GATEWAY_VAR_DIR=${GATEWAY_VAR_DIR:-$PWD/var/demo}
export DATABASE_URL="sqlite:///$GATEWAY_VAR_DIR/demo.sqlite3"
export GEMINI_BASE_URL="http://127.0.0.1:$FAKE_PORT"
export GEMINI_API_KEY=test-upstream-key
mkdir -p "$GATEWAY_VAR_DIR"

"$BIN/python" -m tests.fakes.gemini --port "$FAKE_PORT" --chunk-delay 0.05 >"$GATEWAY_VAR_DIR/fake-gemini.log" 2>&1 &
FAKE_PID=$!
trap 'kill $FAKE_PID 2>/dev/null || true' EXIT

"$BIN/python" manage.py migrate --noinput --verbosity 0
"$BIN/python" manage.py collectstatic --noinput --verbosity 0
"$BIN/python" manage.py ensure_admin
"$BIN/python" manage.py map_model gpt-4o gemini-2.5-flash
"$BIN/python" manage.py map_model text-embedding-3-small gemini-embedding-001
KEY=$("$BIN/python" manage.py issue_token demo --create-user --name "demo-$(date +%s)" | tail -n 1)

cat <<MSG

==> Demo gateway on http://$HOST:$PORT (fake Gemini upstream on :$FAKE_PORT, no real model behind it)
    Admin:    http://$HOST:$PORT/admin/   (usage records appear under Gateway > Usage records)
    Demo key: $KEY

Try it with curl:
  curl http://$HOST:$PORT/v1/chat/completions \\
    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
    -d '{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}], "stream": true}'

Or with the OpenAI SDK:
  from openai import OpenAI
  client = OpenAI(base_url="http://$HOST:$PORT/v1", api_key="$KEY")
  reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello!"}])
  print(reply.choices[0].message.content, reply.usage)

Then: $BIN/python manage.py usage_report    (Ctrl-C stops the demo)

MSG
"$BIN/python" -m gateway_site.serve -b "$HOST" -p "$PORT" gateway_site.asgi:application
