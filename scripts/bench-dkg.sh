#!/usr/bin/env bash
# Key-generation ceremony benchmark: N operators on this machine (all of
# them on its cores at once), each a real `dvnode dkg` process over
# libp2p on 127.0.0.1, making K validators. Prints each round's end on
# operator 0 and one BENCH_DKG line: wall time from the start of the
# processes to the last one's exit, time per validator, the slowest
# operator's own total and the largest resident memory.
#
# Usage: scripts/bench-dkg.sh [--operators 4] [--validators 1000] [--out bench/dkg]
# Keystores use the cheap KDF (--insecure-keystores): scrypt would measure
# the keystore format (about 1 s per key and core), not the ceremony.
set -euo pipefail
cd "$(dirname "$0")/.."
OPERATORS=4
VALIDATORS=1000
OUT=bench/dkg
while [ $# -gt 0 ]; do
    case "$1" in
        --operators) OPERATORS=$2; shift 2 ;;
        --validators) VALIDATORS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
cargo build --release -q -p dvnode
B=./target/release/dvnode
rm -rf "$OUT"
mkdir -p "$OUT"
read -r -a PORTS < <(python3 scripts/free-ports.py "$OPERATORS")
RECORDS=
for i in $(seq 0 $((OPERATORS - 1))); do
    $B create operator-key --data-dir "$OUT/node$i" --p2p-address "/ip4/127.0.0.1/tcp/${PORTS[$i]}" > "$OUT/operator$i.out"
    RECORDS="$RECORDS${RECORDS:+,}$(sed -n 's/^share this with the cluster.s creator: //p' "$OUT/operator$i.out")"
done
$B create dkg --operators "$RECORDS" --validators "$VALIDATORS" --network minimal \
    --withdrawal-address 0x00000000000000000000000000000000000000d1 \
    --fee-recipient 0x0000000000000000000000000000000000000000 \
    --creator-key "$OUT/node0/p2p-key" --out "$OUT/definition.json" > /dev/null
START=$(date +%s%3N)
PIDS=()
for i in $(seq 0 $((OPERATORS - 1))); do
    /usr/bin/time -f "max_rss_kb=%M" $B dkg --definition "$OUT/definition.json" --data-dir "$OUT/node$i" \
        --insecure-keystores > "$OUT/dkg$i.out" 2> "$OUT/dkg$i.log" &
    PIDS+=($!)
done
FAILED=0
for pid in "${PIDS[@]}"; do wait "$pid" || FAILED=$((FAILED + 1)); done
END=$(date +%s%3N)
grep -h "done at" "$OUT/dkg0.out" || true
if [ "$FAILED" -gt 0 ]; then
    echo "$FAILED operator(s) failed:" >&2
    tail -n 3 "$OUT"/dkg*.log >&2
    exit 1
fi
LOCKS=$(md5sum "$OUT"/node*/cluster-lock.json | cut -d' ' -f1 | sort -u | wc -l)
WALL_MS=$((END - START))
SLOWEST=$(sed -n 's/^ceremony complete in \([0-9.]*\) s/\1/p' "$OUT"/dkg*.out | sort -n | tail -1)
RSS=$(sed -n 's/^max_rss_kb=//p' "$OUT"/dkg*.log | sort -n | tail -1)
python3 - "$OPERATORS" "$VALIDATORS" "$WALL_MS" "$SLOWEST" "$RSS" "$LOCKS" <<'PY'
import sys
n, k, wall_ms, slowest, rss_kb, locks = sys.argv[1:]
print("BENCH_DKG operators=%s validators=%s wall_s=%.1f per_validator_ms=%.1f slowest_operator_s=%s max_rss_mb=%d distinct_locks=%s"
      % (n, k, int(wall_ms) / 1000, int(wall_ms) / int(k), slowest, int(rss_kb) // 1024, locks))
PY
