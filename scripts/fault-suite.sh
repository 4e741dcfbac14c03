#!/usr/bin/env bash
# The fault suite: every fault scenario of the end-to-end tests (the tests
# named `fault_*` in distributed_validator/cli/tests/e2e_duties.rs), one
# line per scenario, then a summary:
#   FAULTS scenarios=N passed=P slashable=S panics=X missed_honest=M max_rss_mb=R
# Each scenario is also a test of `cargo nextest run --workspace`.
# DV_FAULT_LOGS=DIR keeps each scenario's node logs in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
rc=0
cargo nextest run -p dvnode --test e2e_duties -E 'test(/^fault_/)' --no-fail-fast \
    --no-capture >"$out" 2>&1 || rc=$?
grep -E "^FAULT " "$out" || true
grep -E "^ +(PASS|FAIL) " "$out" || true
scenarios=$(grep -cE "^ +(PASS|FAIL) .*fault_" "$out" || true)
passed=$(grep -cE "^ +PASS .*fault_" "$out" || true)
sum() { grep -E "^FAULT " "$out" | grep -oE "$1=[0-9]+" | cut -d= -f2 | awk '{s+=$1} END {print s+0}'; }
max() { grep -E "^FAULT " "$out" | grep -oE "$1=[0-9]+" | cut -d= -f2 | awk 'BEGIN {m=0} {if ($1>m) m=$1} END {print m}'; }
echo "FAULTS scenarios=$scenarios passed=$passed slashable=$(sum slashable) panics=$(sum panics) missed_honest=$(sum missed_honest) max_rss_mb=$(max max_rss_mb)"
if [ "$rc" -ne 0 ]; then
    grep -E "panicked|assertion" "$out" | head -20 >&2
fi
exit "$rc"
