#!/bin/sh
# Restart this machine's gateway processes one at a time (after an upgrade or a config change):
#   deploy/rolling-restart.sh 8001 8002
# Each gets SIGTERM (its open requests and streams finish within the grace period) while nginx
# sends new requests to the others; the next one is restarted only once this one answers /health.
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 PORT..." >&2; exit 2; }
for port in "$@"; do
  echo "restarting llm-gateway@$port"
  systemctl restart "llm-gateway@$port"
  tries=0
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/health"; do
    tries=$((tries + 1))
    [ "$tries" -lt 120 ] || { echo "llm-gateway@$port did not come back" >&2; exit 1; }
    sleep 0.5
  done
done
echo "all restarted"
