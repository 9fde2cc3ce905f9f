#!/usr/bin/env bash
# Instructions per call of one email-stage hook through the cdylib, counted by
# valgrind's callgrind: repeatable for the same build whatever else the machine
# does, unlike wall-clock time. Usage (from the workspace root):
#   bash tests/hook-bench/instructions.sh [bench filter, default first_send/cdylib]
# Prints the hook's inclusive instructions divided by its calls: for a `/cdylib`
# case the host's side of the call (`LoadedStage`, the crossing included), for an
# `/rlib` case the stage's own method (the direct call).
set -euo pipefail
filter="${1:-first_send/cdylib}"
cargo bench -p hook-bench --bench stage --no-run 2>/dev/null
bin=$(ls -t target/release/deps/stage-* | grep -v '\.d$' | head -1)
out=$(mktemp)
valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --bench --profile-time 1 "$filter" >/dev/null 2>&1
python3 - "$out" "$filter" <<'PY'
import re, sys
case = sys.argv[2]
hook = {"first_send": "get", "first_send_placeholder": "get", "repeat_get": "get",
        "rate_limited_post": "challenge_invalid", "resend_under_limit": "challenge_invalid",
        "restore": "restore"}[case.split("/")[0]]
side = "plugin_api::loader::LoadedStage" if case.endswith("/cdylib") else "email_stage_plugin::stage::EmailStage"
symbol = f"<{side} as plugin_api::stage::Stage>::{hook}"
lines = open(sys.argv[1]).read().split("\n")
names = {}
for l in lines:
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", l)
    if m and m.group(2):
        names[m.group(1)] = m.group(2)
ids = {k for k, v in names.items() if v.startswith(symbol)}
calls = cost = 0
for i, l in enumerate(lines):
    m = re.match(r"cfn=\((\d+)\)", l)
    if m and m.group(1) in ids:
        c = re.match(r"calls=(\d+)", lines[i + 1])
        if c:
            calls += int(c.group(1))
            # the line after `calls=` holds the position and the inclusive cost
            cost += int(lines[i + 2].split()[1])
if not calls:
    sys.exit(f"{symbol} not found in the profile")
print(f"{calls} calls, {cost / calls:,.0f} instructions per call (inclusive)")
PY
rm -f "$out"
