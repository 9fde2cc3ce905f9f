#!/usr/bin/env bash
# Runs every fuzz target with the given libFuzzer options, one after the other, on
# the stable toolchain (no sanitizer: `cargo fuzz -s none`), and prints one line per
# target with its executions and coverage. Any crash stops the run (exit 1).
# `--dev` first builds without optimizations (with debug assertions): a build
# several times faster, for a short pass where build time dominates.
#   bash fuzz/run.sh --dev -max_total_time=10   # CI's short pass
#   bash fuzz/run.sh -max_total_time=120        # the figures in FUZZING.md
# New inputs go to fuzz/corpus/<target>/ (the corpus kept in the repository; run
# `cargo fuzz cmin -s none <target>` before committing it).
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
profile=()
if [ "${1:-}" = "--dev" ]; then profile=(--dev); shift; fi
targets=(host_config stage_config duration plan_context challenge_body next_query http_executor)
cargo fuzz build -s none "${profile[@]}"
for t in "${targets[@]}"; do
    log=$(mktemp)
    if ! cargo fuzz run -s none "${profile[@]}" "$t" -- "$@" >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz target $t failed" >&2
        exit 1
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
    printf '%-15s %s\n' "$t" "$done_line"
    rm -f "$log"
done
