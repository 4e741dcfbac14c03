#!/usr/bin/env bash
# Local DV testnet, end to end: builds, starts the strict simulated beacon
# chain, creates a cluster over interop validators, starts the nodes, runs for
# --epochs, optionally kills --kill nodes midway, stops everything and prints
# a report ending with one SUMMARY line.
#
# Usage: scripts/local-testnet.sh [--nodes 4] [--validators 16] [--epochs 3]
#                                 [--kill K] [--slot-ms 3000] [--out testnet]
#                                 [--beacon-node URL] [--mode builtin|middleware|plain]
#                                 [--fork deneb|electra|fulu] [--preset minimal|mainnet]
#                                 [--client-json] [--client-skip-aggregation]
#                                 [--interop-validators A..B] [--dkg]
# The nodes perform every duty: attestations, proposals, aggregation, sync
# committee messages and contributions, builder registrations (the
# simulated chain runs --fork, default fulu, from genesis). With --beacon-node the nodes use that beacon
# node instead of the simulator: its chain must have interop validators
# 0..V (e.g. a local interop devnet); the figures then come from the nodes'
# outcome lines, since only the simulator can judge what the chain received.
# --mode middleware runs each node with --validator-api and a validator-client
# simulator (holding that node's key shares) in front of it, instead of the
# node's built-in validator; the clients speak SSZ wherever the Beacon API
# offers it, as Lodestar's does (--client-json: JSON only;
# --client-skip-aggregation: clients that neither subscribe as aggregators
# nor aggregate, whose committees' attestations no block then includes).
# --preset mainnet runs the simulated chain on the mainnet preset (32 slots
# an epoch, mainnet committees and sync committee). --mode plain runs one normal validator
# (`dvnode run --plain` over a 1-node cluster's whole keys: no consensus,
# no peers): the baseline the distributed runs compare against.
# --interop-validators A..B builds the cluster over interop validators A to
# B-1 (the end is exclusive) instead of 0..V: beside an external beacon node
# whose own validator client runs validators 0..A. The release binaries are
# built only when a source is newer than them. --dkg makes the cluster
# without a trusted dealer: each node makes its own operator key, node 0
# writes the cluster definition, every node runs `dvnode dkg`, and the
# simulated chain takes its genesis validators from the ceremony's deposit
# data (it then knows aggregators only from the selection proofs it
# receives). At the end a per-slot plot
# (attestation latency, attestations included and failed) is written to
# OUT/slots.svg from the nodes' logs.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=4
VALIDATORS=16
EPOCHS=3
KILL=0
SLOT_MS=3000
OUT=testnet
EXTERNAL_URL=
MODE=builtin
FORK=fulu
CLIENT_ARGS=()
PRESET=minimal
RANGE=
DKG=0
while [ $# -gt 0 ]; do
    case "$1" in
        --nodes) NODES=$2; shift 2 ;;
        --validators) VALIDATORS=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --kill) KILL=$2; shift 2 ;;
        --slot-ms) SLOT_MS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --beacon-node) EXTERNAL_URL=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --fork) FORK=$2; shift 2 ;;
        --client-json) CLIENT_ARGS+=(--json); shift ;;
        --client-skip-aggregation) CLIENT_ARGS+=(--skip-aggregation); shift ;;
        --preset) PRESET=$2; shift 2 ;;
        --interop-validators) RANGE=$2; shift 2 ;;
        --dkg) DKG=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$PRESET" in
    minimal) SLOTS_PER_EPOCH=8 ;;
    mainnet) SLOTS_PER_EPOCH=32 ;;
    *) echo "--preset must be minimal or mainnet" >&2; exit 2 ;;
esac
case "$MODE" in
    builtin|middleware) ;;
    plain) NODES=1 ;;
    *) echo "--mode must be builtin, middleware or plain" >&2; exit 2 ;;
esac
case "$FORK" in
    deneb|electra|fulu) ;;
    *) echo "--fork must be deneb, electra or fulu" >&2; exit 2 ;;
esac

if [ "$DKG" = 1 ] && { [ -n "$EXTERNAL_URL" ] || [ -n "$RANGE" ] || [ "$MODE" = plain ]; }; then
    echo "--dkg makes new validator keys: only on the simulated chain (no --beacon-node or --interop-validators), and not with --mode plain" >&2
    exit 2
fi
if [ -n "$RANGE" ]; then
    if ! [[ "$RANGE" =~ ^([0-9]+)\.\.([0-9]+)$ ]] || [ "${BASH_REMATCH[2]}" -le "${BASH_REMATCH[1]}" ]; then
        echo "--interop-validators must be a range A..B with A < B (B exclusive), not $RANGE" >&2
        exit 2
    fi
    FIRST_VALIDATOR=${BASH_REMATCH[1]}
    VALIDATORS=$((BASH_REMATCH[2] - BASH_REMATCH[1]))
    if [ -z "$EXTERNAL_URL" ] && [ "$FIRST_VALIDATOR" -ne 0 ]; then
        echo "--interop-validators $RANGE: the simulated chain judges every validator it has, so with it the cluster runs all of them (0..B); give --beacon-node for a cluster beside other validators" >&2
        exit 2
    fi
else
    FIRST_VALIDATOR=0
fi

BINARIES=(target/release/dvnode target/release/simulated-beacon-chain target/release/validator-client-simulator)
stale=0
for b in "${BINARIES[@]}"; do
    [ -x "$b" ] || stale=1
done
if [ "$stale" = 0 ] && [ -n "$(find distributed_validator integration Cargo.toml Cargo.lock -newer target/release/dvnode \( -name '*.rs' -o -name 'Cargo.*' \) -print -quit)" ]; then
    stale=1
fi
if [ "$stale" = 1 ]; then
    echo "building (release)..."
    cargo build --release -q -p dvnode -p dv_integration --bins
else
    echo "release binaries are newer than the sources: not rebuilding"
fi

rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# The chain's configuration: the simulator's (--preset) or the external node's.
if [ -n "$EXTERNAL_URL" ]; then
    URL=$EXTERNAL_URL
    GENESIS_DELAY_MS=0
    read -r FORK_VERSION SLOT_MS SLOTS_PER_EPOCH < <(python3 - "$URL" <<'EOF'
import json, sys, urllib.request
url = sys.argv[1].rstrip("/")
try:
    genesis = json.load(urllib.request.urlopen(url + "/eth/v1/beacon/genesis", timeout=10))["data"]
    spec = json.load(urllib.request.urlopen(url + "/eth/v1/config/spec", timeout=10))["data"]
except Exception as e:
    sys.exit("beacon node %s: %s" % (url, e))
slot_ms = int(spec["SLOT_DURATION_MS"]) if "SLOT_DURATION_MS" in spec else int(spec["SECONDS_PER_SLOT"]) * 1000
print(genesis["genesis_fork_version"], slot_ms, spec["SLOTS_PER_EPOCH"])
EOF
)
    [ -n "${FORK_VERSION:-}" ] || { echo "could not read the chain's configuration from $URL" >&2; exit 1; }
    echo "external beacon node at $URL (genesis fork version $FORK_VERSION, ${SLOT_MS} ms slots)"
    NETWORK_ARGS=(--fork-version "$FORK_VERSION")
else
    NETWORK_ARGS=(--network "$PRESET")
fi

# Every port the run listens on (p2p, metrics, validator API per node, node
# 0's status page), all distinct and below the ephemeral range.
read -r -a PORTS < <(python3 scripts/free-ports.py "$((3 * NODES + 1))")
ADDRESSES=$(for i in $(seq 0 $((NODES - 1))); do printf '/ip4/127.0.0.1/tcp/%s,' "${PORTS[$i]}"; done)
ADDRESSES=${ADDRESSES%,}
if [ "$DKG" = 1 ]; then
    # Every operator makes its own key; node 0 writes and signs the definition.
    RECORDS=
    for i in $(seq 0 $((NODES - 1))); do
        ./target/release/dvnode create operator-key --data-dir "$OUT/node$i" \
            --p2p-address "/ip4/127.0.0.1/tcp/${PORTS[$i]}" > "$OUT/operator$i.out"
        RECORDS="$RECORDS${RECORDS:+,}$(sed -n 's/^share this with the cluster.s creator: //p' "$OUT/operator$i.out")"
    done
    ./target/release/dvnode create dkg --operators "$RECORDS" --validators "$VALIDATORS" "${NETWORK_ARGS[@]}" \
        --withdrawal-address 0x00000000000000000000000000000000000000d1 \
        --fee-recipient 0x0000000000000000000000000000000000000000 \
        --creator-key "$OUT/node0/p2p-key" --out "$OUT/cluster-definition.json" > "$OUT/create.out"
    CEREMONY=()
    for i in $(seq 0 $((NODES - 1))); do
        ./target/release/dvnode dkg --definition "$OUT/cluster-definition.json" --data-dir "$OUT/node$i" \
            --insecure-keystores > "$OUT/dkg$i.out" 2> "$OUT/dkg$i.log" &
        CEREMONY+=($!)
    done
    for i in $(seq 0 $((NODES - 1))); do
        if ! wait "${CEREMONY[$i]}"; then
            echo "the key generation ceremony failed on node $i:" >&2
            tail -3 "$OUT/dkg$i.log" >&2
            exit 1
        fi
    done
    echo "key generation ceremony: $(grep -h 'ceremony complete' "$OUT"/dkg*.out | sort | tail -1) ($NODES operators, $VALIDATORS validators)"
    GENESIS_ARGS=()
    for f in "$OUT"/node0/deposit_data-*.json; do GENESIS_ARGS+=(--genesis-validators "$f"); done
else
    ./target/release/dvnode create cluster --interop-validators "$FIRST_VALIDATOR..$((FIRST_VALIDATOR + VALIDATORS))" --nodes "$NODES" \
        "${NETWORK_ARGS[@]}" --insecure-keystores --force --p2p-addresses "$ADDRESSES" --out "$OUT" \
        --fee-recipient 0x0000000000000000000000000000000000000000 > "$OUT/create.out"
    GENESIS_ARGS=(--validators "$VALIDATORS")
fi
echo "cluster: $NODES nodes, threshold $(grep -o 'threshold [0-9]*' "$OUT/create.out" | head -1 | cut -d' ' -f2)"

if [ -z "$EXTERNAL_URL" ]; then
    # Genesis after the nodes are up: loading keystores and checking the lock take ~5 ms per validator.
    GENESIS_DELAY_MS=$((4000 + 6 * VALIDATORS))
    ./target/release/simulated-beacon-chain "${GENESIS_ARGS[@]}" --slot-ms "$SLOT_MS" --fork "$FORK" --preset "$PRESET" \
        --genesis-delay-ms "$GENESIS_DELAY_MS" --report "$OUT/report.json" > "$OUT/beacon-chain.out" 2>&1 &
    CHAIN_PID=$!
    PIDS+=($CHAIN_PID)
    for _ in $(seq 50); do
        grep -q "listening on" "$OUT/beacon-chain.out" 2>/dev/null && break
        sleep 0.1
    done
    URL=$(grep -o 'http://[0-9.:]*' "$OUT/beacon-chain.out" | head -1)
    echo "simulated beacon chain at $URL ($VALIDATORS validators, ${SLOT_MS} ms slots, $FORK, $PRESET preset)"
fi

NODE_PIDS=()
CLIENT_PIDS=()
METRICS_ADDRS=()
# Node 0 serves its status page (the cluster, its peers, the duties with
# their outcomes and traces) during the run.
STATUS_PORT=${PORTS[$((3 * NODES))]}
for i in $(seq 0 $((NODES - 1))); do
    # Each node serves its metrics; they are saved to $OUT/node$i.metrics at the end.
    METRICS_ADDRS[$i]=127.0.0.1:${PORTS[$((NODES + i))]}
    STATUS=()
    [ "$i" = 0 ] && STATUS=(--http --http-port "$STATUS_PORT")
    if [ "$MODE" = middleware ]; then
        API=127.0.0.1:${PORTS[$((2 * NODES + i))]}
        ./target/release/dvnode run --data-dir "$OUT/node$i" --beacon-node "$URL" --validator-api "$API" \
            --metrics "${METRICS_ADDRS[$i]}" "${STATUS[@]}" 2> "$OUT/node$i.log" &
        NODE_PIDS+=($!)
        PIDS+=($!)
        # The validator client holds node i's key shares and takes the node for its beacon node.
        ./target/release/validator-client-simulator --beacon-node "http://$API" --keys "$OUT/node$i/validator_keys" \
            "${CLIENT_ARGS[@]}" > "$OUT/client$i.out" 2> "$OUT/client$i.log" &
        CLIENT_PIDS[$i]=$!
        PIDS+=($!)
    else
        PLAIN=()
        [ "$MODE" = plain ] && PLAIN=(--plain)
        ./target/release/dvnode run --data-dir "$OUT/node$i" --beacon-node "$URL" "${PLAIN[@]}" \
            --metrics "${METRICS_ADDRS[$i]}" "${STATUS[@]}" 2> "$OUT/node$i.log" &
        NODE_PIDS+=($!)
        PIDS+=($!)
    fi
done
echo "mode: $MODE; node 0's status page: http://127.0.0.1:$STATUS_PORT/"

EPOCH_MS=$((SLOTS_PER_EPOCH * SLOT_MS))
RUN_MS=$((GENESIS_DELAY_MS + EPOCHS * EPOCH_MS + SLOT_MS))
START=$(date +%s%3N)
KILLED=0
while true; do
    NOW=$(date +%s%3N)
    ELAPSED=$((NOW - START))
    [ "$ELAPSED" -ge "$RUN_MS" ] && break
    if [ "$KILL" -gt 0 ] && [ "$KILLED" -eq 0 ] && [ "$ELAPSED" -ge $((RUN_MS / 2)) ]; then
        for i in $(seq 0 $((KILL - 1))); do
            kill -9 "${NODE_PIDS[$i]}" 2>/dev/null || true
            [ -n "${CLIENT_PIDS[$i]:-}" ] && kill -9 "${CLIENT_PIDS[$i]}" 2>/dev/null || true
        done
        KILLED=1
        echo "killed $KILL node(s) at $((ELAPSED / 1000)) s"
    fi
    if [ -z "$EXTERNAL_URL" ]; then
        OK=$(curl -s "$URL/dv/report" | python3 -c "import json,sys; print(json.load(sys.stdin)['report']['attestations_ok'])" 2>/dev/null || echo "?")
        echo "  $((ELAPSED / 1000)) s / $((RUN_MS / 1000)) s: attestations included so far: $OK"
    else
        OK=$(cat "$OUT"/node*.log | grep -c "duty ok" || true)
        echo "  $((ELAPSED / 1000)) s / $((RUN_MS / 1000)) s: duty ok lines so far: $OK"
    fi
    sleep 4
done

for i in $(seq 0 $((NODES - 1))); do
    curl -s --max-time 2 "http://${METRICS_ADDRS[$i]}/metrics" > "$OUT/node$i.metrics" || rm -f "$OUT/node$i.metrics"
done
for pid in "${CLIENT_PIDS[@]:-}" "${NODE_PIDS[@]}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
if [ -z "$EXTERNAL_URL" ]; then
    kill "$CHAIN_PID" 2>/dev/null || true
    wait "$CHAIN_PID" 2>/dev/null || true
fi
PIDS=()
python3 scripts/plot-testnet.py "$OUT" "$SLOT_MS"

if [ -n "$EXTERNAL_URL" ]; then
    sleep 1
    # Only the simulator can say what the chain received; here the figures come
    # from the nodes' outcome lines (a duty counts once, from the node that did best).
    python3 - "$OUT" <<'EOF'
import glob, re, sys
started, ok, latencies, refused, errors = {}, {}, [], 0, 0
def field(line, key):
    m = re.search(r'\b' + key + r'="?([^ "]+)', line)
    return m.group(1) if m else None
for path in glob.glob(sys.argv[1] + "/node*.log"):
    for line in open(path, errors="replace"):
        if "slashing protection refused" in line:
            refused += 1
        if "HTTP 400" in line:
            errors += 1
        slot, duty, count = field(line, "slot"), field(line, "duty"), field(line, "count")
        if not (slot and duty and count):
            continue
        key = (int(slot), duty)
        if "duty started" in line:
            started[key] = max(started.get(key, 0), int(count))
        elif "duty ok" in line:
            ok[key] = max(ok.get(key, 0), int(count))
            if duty == "attester":
                latencies.append(int(field(line, "latency_ms")))
# Judged up to the slot before the last one any node started a duty in,
# as the simulator judges: the last slots' duties may not have reached
# their due time (aggregation at two thirds) when the run stopped.
last = max([k[0] for k in started] or [0])
def tally(kind):
    keys = [k for k in started if k[1] == kind and k[0] < last - 1]
    good = sum(min(ok.get(k, 0), started[k]) for k in keys)
    return good, sum(started[k] for k in keys) - good
att_ok, att_missed = tally("attester")
prop_ok, prop_missed = tally("proposer")
agg_ok, agg_missed = tally("aggregator")
msg_ok, msg_missed = tally("sync_message")
con_ok, con_missed = tally("sync_contribution")
reg_ok = max([ok[k] for k in ok if k[1] == "registration"] or [0])
latencies.sort()
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0
print()
print("attestations submitted / failed (node logs): %d / %d" % (att_ok, att_missed))
print("blocks published / failed (node logs):       %d / %d" % (prop_ok, prop_missed))
print("aggregates submitted / failed (node logs):   %d / %d" % (agg_ok, agg_missed))
print("sync messages submitted / failed:            %d / %d" % (msg_ok, msg_missed))
print("sync contributions submitted / failed:       %d / %d" % (con_ok, con_missed))
print("submissions the beacon node refused (400):   %d" % errors)
print("slashing protection refusals in the nodes:   %d" % refused)
print("slashable pairs: not observable through an external beacon node (n/a)")
print("SUMMARY attestations_ok=%d attestations_missed=%d proposals_ok=%d proposals_missed=%d aggregations_ok=%d aggregations_missed=%d sync_messages_ok=%d sync_messages_missed=%d contributions_ok=%d contributions_missed=%d registrations_ok=%d invalid_signatures=%d slashable=n/a p99_attestation_ms=%d" % (
    att_ok, att_missed, prop_ok, prop_missed, agg_ok, agg_missed, msg_ok, msg_missed, con_ok, con_missed, reg_ok, errors, p99))
EOF
    exit 0
fi

python3 - "$OUT/report.json" "$RUN_MS" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
run_ms = int(sys.argv[2])
r, d, t = data["report"], data["duties_until_last_slot"], data["timeliness_until_last_slot"]
def p99_of(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else 0
p99, p99_due = p99_of(r["attestation_delays_ms"]), p99_of(r["attestation_after_due_ms"])
pct = lambda part: 100.0 * part / t["duties"] if t["duties"] else 0.0
cpu_pct = 100.0 * data["cpu_ms"] / run_ms if run_ms else 0.0
print()
print("attestations included / missed (slots 1..last-1): %d / %d" % (d["attestations_ok"], d["attestations_missed"]))
print("  received %d, kept for aggregation %d (no aggregator subscribed: %d)" % (r["attestations_received"], r["attestations_received"] - r["attestations_unsubscribed"], r["attestations_unsubscribed"]))
print("  timely source / target / head: %.1f%% / %.1f%% / %.1f%% of %d duties" % (pct(t["source_timely"]), pct(t["target_timely"]), pct(t["head_timely"]), t["duties"]))
print("  inclusion delay (slots: count): %s" % ", ".join("%s: %d" % kv for kv in sorted(r["inclusion_delays"].items(), key=lambda kv: int(kv[0]))))
print("  arrival p99: %d ms after the slot start, %d ms after the attestation due time" % (p99, p99_due))
print("block proposals landed / missed:              %d / %d" % (d["proposals_ok"], d["proposals_missed"]))
a = data["aggregates_until_last_slot"]
print("aggregation duties landed / missed:           %d / %d (the chain accepted %d aggregates, refused %d)" % (a[0], a[1], r["aggregates_ok"], r["aggregates_rejected"]))
print("  aggregators known from: %s" % r["aggregators_known_from"])
m, c = data["sync_messages_until_last_slot"], data["contributions_until_last_slot"]
print("sync committee messages landed / missed:      %d / %d" % (m[0], m[1]))
print("sync contributions landed / missed:           %d / %d (refused sync items: %d)" % (c[0], c[1], r["sync_rejected"]))
print("validators registered with the builder:       %d (registrations accepted %d, refused %d)" % (data["validators_registered"], r["registrations_ok"], r["registrations_rejected"]))
print("invalid signatures received by the chain:     %d" % r["invalid_signatures"])
print("slashable pairs received by the chain:        %d" % len(r["slashable"]))
if r["rejections"]:
    print("rejections:", r["rejections"])
print("duplicate blocks answered as already known:  %d" % r["duplicate_blocks"])
print("simulated chain CPU: %d ms over a %d ms run (%.1f%% of one core)" % (data["cpu_ms"], run_ms, cpu_pct))
print("SUMMARY attestations_ok=%d attestations_missed=%d proposals_ok=%d proposals_missed=%d aggregations_ok=%d aggregations_missed=%d sync_messages_ok=%d sync_messages_missed=%d contributions_ok=%d contributions_missed=%d registrations_ok=%d invalid_signatures=%d slashable=%d p99_attestation_ms=%d head_timely_pct=%.1f target_timely_pct=%.1f p99_after_due_ms=%d chain_cpu_pct=%.1f" % (
    d["attestations_ok"], d["attestations_missed"], d["proposals_ok"], d["proposals_missed"],
    a[0], a[1], m[0], m[1], c[0], c[1], data["validators_registered"],
    r["invalid_signatures"], len(r["slashable"]), p99, pct(t["head_timely"]), pct(t["target_timely"]), p99_due, cpu_pct))
EOF
