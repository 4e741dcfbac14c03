#!/usr/bin/env bash
# Local DV testnet, end to end: builds, starts the strict simulated beacon
# chain, creates a cluster over interop validators, starts the nodes, runs for
# --epochs, optionally kills --kill nodes midway, stops everything and prints
# a report ending with one SUMMARY line.
#
# Usage: scripts/local-testnet.sh [--nodes 4] [--validators 16] [--epochs 3]
#                                 [--kill K] [--slot-ms 2000] [--out testnet]
# Today the nodes perform attester duties (Electra and later; the chain runs
# Fulu); block proposals are not implemented yet and show as missed.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=4
VALIDATORS=16
EPOCHS=3
KILL=0
SLOT_MS=2000
OUT=testnet
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=$2; shift 2 ;;
        --validators) VALIDATORS=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --kill) KILL=$2; shift 2 ;;
        --slot-ms) SLOT_MS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
SLOTS_PER_EPOCH=8

echo "building (release)..."
cargo build --release -q -p dvnode -p dv_integration --bins

rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

GENESIS_DELAY_MS=6000
./target/release/simulated-beacon-chain --validators "$VALIDATORS" --slot-ms "$SLOT_MS" \
    --genesis-delay-ms "$GENESIS_DELAY_MS" --report "$OUT/report.json" > "$OUT/beacon-chain.out" 2>&1 &
CHAIN_PID=$!
for _ in $(seq 50); do
    grep -q "listening on" "$OUT/beacon-chain.out" 2>/dev/null && break
    sleep 0.1
done
URL=$(grep -o 'http://[0-9.:]*' "$OUT/beacon-chain.out" | head -1)
echo "simulated beacon chain at $URL ($VALIDATORS validators, ${SLOT_MS} ms slots)"

ADDRESSES=$(python3 -c "
import socket
addrs = []
for _ in range($NODES):
    s = socket.socket(); s.bind(('127.0.0.1', 0)); addrs.append('/ip4/127.0.0.1/tcp/%d' % s.getsockname()[1]); s.close()
print(','.join(addrs))")
./target/release/dvnode create cluster --interop-validators "0..$VALIDATORS" --nodes "$NODES" \
    --network minimal --insecure-keystores --force --p2p-addresses "$ADDRESSES" --out "$OUT" > "$OUT/create.out"
echo "cluster: $NODES nodes, threshold $(grep -o 'threshold [0-9]*' "$OUT/create.out" | head -1 | cut -d' ' -f2)"

NODE_PIDS=()
for i in $(seq 0 $((NODES - 1))); do
    ./target/release/dvnode run --data-dir "$OUT/node$i" --beacon-node "$URL" 2> "$OUT/node$i.log" &
    NODE_PIDS+=($!)
    PIDS+=($!)
done

EPOCH_MS=$((SLOTS_PER_EPOCH * SLOT_MS))
RUN_MS=$((GENESIS_DELAY_MS + EPOCHS * EPOCH_MS + SLOT_MS))
START=$(date +%s%3N)
KILLED=0
while true; do
    NOW=$(date +%s%3N)
    ELAPSED=$((NOW - START))
    [ "$ELAPSED" -ge "$RUN_MS" ] && break
    if [ "$KILL" -gt 0 ] && [ "$KILLED" -eq 0 ] && [ "$ELAPSED" -ge $((RUN_MS / 2)) ]; then
        for i in $(seq 0 $((KILL - 1))); do kill -9 "${NODE_PIDS[$i]}" 2>/dev/null || true; done
        KILLED=1
        echo "killed $KILL node(s) at $((ELAPSED / 1000)) s"
    fi
    OK=$(curl -s "$URL/dv/report" | python3 -c "import json,sys; print(json.load(sys.stdin)['report']['attestations_ok'])" 2>/dev/null || echo "?")
    echo "  $((ELAPSED / 1000)) s / $((RUN_MS / 1000)) s: attestations landed so far: $OK"
    sleep 4
done

for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
kill "$CHAIN_PID" 2>/dev/null || true
wait "$CHAIN_PID" 2>/dev/null || true
PIDS=()

python3 - "$OUT/report.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
r, d = data["report"], data["duties_until_last_slot"]
delays = sorted(r["attestation_delays_ms"])
p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else 0
print()
print("attestations landed / missed (slots 1..last): %d / %d" % (d["attestations_ok"], d["attestations_missed"]))
print("block proposals landed / missed:              %d / %d (not implemented yet)" % (d["proposals_ok"], d["proposals_missed"]))
print("invalid signatures received by the chain:     %d" % r["invalid_signatures"])
print("slashable pairs received by the chain:        %d" % len(r["slashable"]))
if r["rejections"]:
    print("rejections:", r["rejections"])
print("SUMMARY attestations_ok=%d attestations_missed=%d proposals_ok=%d proposals_missed=%d invalid_signatures=%d slashable=%d p99_attestation_ms=%d" % (
    d["attestations_ok"], d["attestations_missed"], d["proposals_ok"], d["proposals_missed"],
    r["invalid_signatures"], len(r["slashable"]), p99))
EOF
