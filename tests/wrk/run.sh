#!/usr/bin/env bash
# The HTTP table of BENCHMARKS.md: starts `host-harness serve` on the embedded
# defaults in a fresh directory, brings one browser session to the email stage of
# the recovery flow (an unknown address, so nothing is mailed), then runs wrk with
# repeat_get.lua and resend.lua and prints the server's RSS before and after.
#
#   bash tests/wrk/run.sh            # release build, 30 s + 15 s, as in BENCHMARKS.md
#   DURATION=1 BIN=target/debug/host-harness bash tests/wrk/run.sh   # CI's smoke run
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
BIN=${BIN:-target/release/host-harness}
DURATION=${DURATION:-30}
if [ "$BIN" = target/release/host-harness ]; then cargo build --release -p host-harness -p email-stage-plugin; fi
PORT=${PORT:-9088}
DATA=$(mktemp -d)
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$BIN" serve --listen "127.0.0.1:$PORT" --data "$DATA" >"$DATA/serve.log" 2>&1 &
SERVER=$!
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$BASE/-/health/live/" >/dev/null && break; sleep 0.1; done
API="$BASE/api/v3/flows/executor/recover/?query="
curl -sf -c "$DATA/jar" "$API" >/dev/null
curl -sf -b "$DATA/jar" -c "$DATA/jar" -H 'Content-Type: application/json' \
  -d '{"uid_field": "nobody@example.com"}' -L "$API" | grep -q '"ak-stage-email"'
export SESSION_COOKIE
SESSION_COOKIE=$(awk '$6 == "ih_session" { print $7 }' "$DATA/jar")
[ -n "$SESSION_COOKIE" ] || { echo "no session cookie" >&2; exit 1; }
rss() { awk '/VmRSS/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$SERVER/status"; }
echo "server RSS before: $(rss)"
echo "== repeat GET, ${DURATION} s"
wrk -t2 -c32 -d"${DURATION}s" --latency -s tests/wrk/repeat_get.lua "$BASE" | grep -E 'requests in|Requests/sec|50%|99%'
echo "server RSS after: $(rss)"
echo "== \"Send Email again.\" POST, $(( (DURATION + 1) / 2 )) s"
wrk -t2 -c32 -d"$(( (DURATION + 1) / 2 ))s" --latency -s tests/wrk/resend.lua "$BASE" | grep -E 'requests in|Requests/sec|50%|99%'
echo "server RSS after: $(rss)"
