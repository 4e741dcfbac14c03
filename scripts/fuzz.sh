#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time each, from
# the committed corpus (fuzz/corpus/<target>), on nightly with cargo-fuzz.
# A crash fails the run and leaves its input in fuzz/artifacts/<target>/:
# turn it into a regression test beside the decoder it broke.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 30 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-30}"
shift || true

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "error: the nightly toolchain is needed for cargo fuzz (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz missing; installing it" >&2
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# No sanitizer: the decoders are safe Rust, and what is looked for is a
# panic (overflow checks on) or an endless loop; building the dependency
# tree with AddressSanitizer would double CI's build time.
flags=(--sanitizer none --debug-assertions)
cargo +nightly fuzz build "${flags[@]}"
# Extra, read-only seeds from ../shared (read there, never copied here).
shared_seeds() {
    local shared=../shared
    case "$1" in
        keystore) echo "$shared/test-vectors/eip2335" ;;
        interchange) echo "$shared/test-vectors/slashing-interchange" ;;
        beacon_block_response | middleware_block_body)
            echo "$shared/beacon-api-samples/lodestar-deneb $shared/beacon-api-samples/lodestar-electra-prefinal" ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    echo "== $target (${seconds}s)"
    log="fuzz/target/$target.log"
    mkdir -p fuzz/target
    rc=0
    seeds=()
    for dir in $(shared_seeds "$target"); do
        [ -d "$dir" ] && seeds+=("$dir")
    done
    cargo +nightly fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "${seeds[@]}" -- \
        -max_total_time="$seconds" -max_len=1048576 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E "stat::number_of_executed_units|stat::new_units_added|panicked|SUMMARY|ERROR" "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" >&2
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FUZZ failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "FUZZ targets=${#targets[@]} seconds_each=$seconds failed=0"
