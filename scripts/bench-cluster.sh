#!/usr/bin/env bash
# Cluster benchmark: runs a DV cluster on the simulated chain (through
# scripts/local-testnet.sh), then a plain validator over the same validators
# on a chain of its own, and prints what the deadlines and the CPU came to,
# ending with one BENCH line.
#
# Usage: scripts/bench-cluster.sh --validators V [--nodes 4] [--mode builtin|middleware]
#                                 [--preset minimal|mainnet] [--slot-ms 12000] [--epochs 2]
#                                 [--kill K] [--fork fulu] [--out bench] [--no-plain]
#
# Figures (all from this run):
# - p50/p99_after_due_ms: arrival of each attestation at the chain after its
#   due time (a third of the slot), from the chain's report; missed: the
#   attestation duties no block included (other_missed: every other duty type).
# - cpu_ms_per_attestation_node: a node's CPU from genesis to the end of the
#   run (user + system, from /proc), divided by the attestations it signed;
#   mean over the nodes that ran to the end.
# - floor_ms: the BLS work of one threshold signature over a root shared by
#   the slot (own partial, the peers' partials decoded and batch-checked, one
#   combination, the check of the result), timed on this machine by
#   `bls-floor` (process CPU time); floor_distinct_ms: the same for a root of
#   its own (aggregates, sync contributions, blocks, randao: hashed to G2 and
#   paired per signature). cpu_ratio: a node's CPU over the floor of the
#   signatures it combined (dv_combined_signatures_total by duty, each at its
#   kind's floor); a node combines more than one signature per attestation
#   (every attester's selection proof, aggregates, sync duties), which is why
#   the ratio is taken over signatures.
# - rss_mb_max: the largest resident set of a node; consensus_msgs_per_slot
#   and wire_bytes_per_slot: what all nodes handed to the cluster network
#   (each delivery attempt; bytes as encoded), per slot run.
# - Per stage: each duty type's mean time in fetch, consensus, exchange and
#   submit, from the nodes' dv_stage_latency_seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

VALIDATORS=
NODES=4
MODE=builtin
PRESET=minimal
SLOT_MS=12000
EPOCHS=2
KILL=0
FORK=fulu
OUT=bench
PLAIN=1
while [ $# -gt 0 ]; do
    case "$1" in
        --validators) VALIDATORS=$2; shift 2 ;;
        --nodes) NODES=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        --preset) PRESET=$2; shift 2 ;;
        --slot-ms) SLOT_MS=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --kill) KILL=$2; shift 2 ;;
        --fork) FORK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-plain) PLAIN=0; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$VALIDATORS" ] || { echo "--validators is required" >&2; exit 2; }
case "$MODE" in
    builtin|middleware) ;;
    *) echo "--mode must be builtin or middleware" >&2; exit 2 ;;
esac
case "$PRESET" in
    minimal) SLOTS_PER_EPOCH=8 ;;
    mainnet) SLOTS_PER_EPOCH=32 ;;
    *) echo "--preset must be minimal or mainnet" >&2; exit 2 ;;
esac

echo "building (release)..."
cargo build --release -q -p dvnode -p dv_integration --bins
rm -rf "$OUT"
mkdir -p "$OUT"

# The floor, for one slot's attesters on one node.
PER_SLOT=$(( (VALIDATORS + SLOTS_PER_EPOCH - 1) / SLOTS_PER_EPOCH ))
[ "$PER_SLOT" -ge 64 ] || PER_SLOT=64
./target/release/bls-floor --nodes "$NODES" --validators "$PER_SLOT" | tee "$OUT/floor.out"

# Samples the CPU and RSS of one phase's processes (dvnode, validator
# clients) from genesis until each node's metrics are saved (the end of the
# run), into $2; stops when the process $3 ends.
sample() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, os, re, sys, time, urllib.request
run_dir, out, watch = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
genesis_ms, procs = None, {}   # name -> {pid, base, last, rss, frozen}

def name_of(pid):
    try:
        args = open("/proc/%s/cmdline" % pid, "rb").read().split(b"\0")
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in args]
    for flag in ("--data-dir", "--keys"):
        if flag in args[:-1]:
            path = os.path.abspath(args[args.index(flag) + 1])
            m = re.match(re.escape(run_dir) + r"/node(\d+)(/validator_keys)?$", path)
            if m:
                return ("client%s" if m.group(2) else "node%s") % m.group(1)
    return None

def cpu_ms(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * tick_ms

def rss_mb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0

while os.path.exists("/proc/%d" % watch):
    if genesis_ms is None:
        try:
            url = re.search(r"http://[0-9.:]+", open(run_dir + "/beacon-chain.out").read()).group(0)
            g = json.load(urllib.request.urlopen(url + "/eth/v1/beacon/genesis", timeout=2))
            genesis_ms = int(g["data"]["genesis_time"]) * 1000
        except Exception:
            pass
    now_ms = time.time() * 1000
    if genesis_ms is not None and now_ms >= genesis_ms:
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            name = name_of(pid)
            if name and name not in procs:
                procs[name] = {"pid": int(pid), "base": None, "last": 0.0, "rss": 0.0, "frozen": False,
                               "series": []}
        for name, p in procs.items():
            if p["frozen"]:
                continue
            try:
                c, r = cpu_ms(p["pid"]), rss_mb(p["pid"])
            except (OSError, IndexError, ValueError):
                # Gone: killed mid-run, unless stopped at the end (its metrics saved).
                p["frozen"] = True
                p["killed"] = name.startswith("node") and not os.path.exists("%s/%s.metrics" % (run_dir, name))
                continue
            if p["base"] is None:
                p["base"] = c
            p["last"], p["rss"] = c, max(p["rss"], r)
            # RSS every 10 s from genesis: whether it levels off or keeps growing.
            t = int((now_ms - genesis_ms) / 10000) * 10
            if not p["series"] or p["series"][-1][0] != t:
                p["series"].append([t, round(r, 1)])
            if name.startswith("node") and os.path.exists("%s/%s.metrics" % (run_dir, name)):
                p["frozen"] = True
    time.sleep(0.25)
json.dump({n: {"cpu_ms": p["last"] - (p["base"] or 0.0), "rss_mb": p["rss"],
               "killed": p.get("killed", False), "rss_series": p["series"]}
           for n, p in procs.items()}, open(out, "w"))
EOF
}

# Runs one phase of the benchmark: local-testnet.sh with $@, sampled.
phase() {
    local name=$1; shift
    echo "== $name: scripts/local-testnet.sh $*"
    scripts/local-testnet.sh "$@" --out "$OUT/$name" > "$OUT/$name.out" 2>&1 &
    local pid=$!
    sample "$OUT/$name" "$OUT/$name.cpu.json" "$pid" &
    local sampler=$!
    wait "$pid" || { echo "$name: local-testnet.sh failed; see $OUT/$name.out" >&2; tail -20 "$OUT/$name.out" >&2; exit 1; }
    wait "$sampler"
    grep -E "^(  |[a-z])" "$OUT/$name.out" | grep -v "^  [0-9]* s /" | sed 's/^/  /' | tail -25
}

COMMON=(--validators "$VALIDATORS" --preset "$PRESET" --slot-ms "$SLOT_MS" --epochs "$EPOCHS" --fork "$FORK")
phase dv "${COMMON[@]}" --nodes "$NODES" --mode "$MODE" --kill "$KILL"
if [ "$PLAIN" = 1 ]; then phase plain "${COMMON[@]}" --mode plain; fi

python3 - "$OUT" "$SLOTS_PER_EPOCH" "$EPOCHS" "$VALIDATORS" "$PLAIN" <<'EOF'
import glob, json, os, re, sys
out, slots_per_epoch, epochs, validators, plain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
slots = slots_per_epoch * epochs

def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else 0

def metrics(path):
    """Prometheus text -> {(name, frozenset(labels)): value}."""
    found = {}
    for line in open(path):
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? ([0-9.eE+-]+)$', line.strip())
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            found[(m.group(1), labels)] = float(m.group(3))
    return found

def attestations_signed(log):
    total = 0
    for line in open(log, errors="replace"):
        if "duty started" in line and 'duty="attester"' in line:
            m = re.search(r"count=(\d+)", line)
            total += int(m.group(1)) if m else 0
    return total

def phase(name):
    d = "%s/%s" % (out, name)
    report = json.load(open(d + "/report.json"))
    r, dut = report["report"], report["duties_until_last_slot"]
    cpu = json.load(open("%s/%s.cpu.json" % (out, name)))
    nodes = []
    for i in range(len(glob.glob(d + "/node*.log"))):
        n = cpu.get("node%d" % i)
        if not n or n["killed"] or not os.path.exists("%s/node%d.metrics" % (d, i)):
            continue
        m = metrics("%s/node%d.metrics" % (d, i))
        combined = sum(v for (k, _), v in m.items() if k == "dv_combined_signatures_total")
        # A DV node counts the attestations it combined (either attachment);
        # the plain validator's come from its outcome lines.
        attested = m.get(("dv_combined_signatures_total", frozenset({("duty", "attester")})), 0)
        nodes.append({"cpu_ms": n["cpu_ms"], "rss_mb": n["rss_mb"], "metrics": m, "combined": combined,
                      "attestations": attested or attestations_signed("%s/node%d.log" % (d, i))})
    other = sum(dut[k] for k in ("proposals_missed",)) + report["aggregates_until_last_slot"][1] \
        + report["sync_messages_until_last_slot"][1] + report["contributions_until_last_slot"][1]
    return {"after_due": r["attestation_after_due_ms"], "missed": dut["attestations_missed"],
            "other_missed": other, "nodes": nodes, "all_nodes": cpu, "chain_cpu_ms": report["cpu_ms"]}

floor_text = open(out + "/floor.out").read()
floor = float(re.search(r"^FLOOR ms_per_attestation=([0-9.]+)", floor_text, re.M).group(1))
floor_distinct = float(re.search(r"^FLOOR_DISTINCT ms_per_attestation=([0-9.]+)", floor_text, re.M).group(1))
# Duties whose signatures each sign a root of their own; the others share one root per slot.
DISTINCT = {"aggregator", "sync_contribution", "proposer", "randao", "exit"}
def floor_of(node):
    return sum(v * (floor_distinct if dict(l).get("duty") in DISTINCT else floor)
               for (k, l), v in node["metrics"].items() if k == "dv_combined_signatures_total")
dv = phase("dv")
alive = dv["nodes"]
mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
cpu_per_att = mean([n["cpu_ms"] / n["attestations"] for n in alive if n["attestations"]])
ratio = mean([n["cpu_ms"] / floor_of(n) for n in alive if n["combined"]])
sigs_per_att = mean([n["combined"] / n["attestations"] for n in alive if n["attestations"]])
total = lambda name, **want: sum(v for n in alive for (k, labels), v in n["metrics"].items()
                                 if k == name and all((l, want[l]) in labels for l in want))
msgs = total("dv_p2p_sent_messages_total", topic="consensus")
wire = total("dv_p2p_sent_bytes_total")
# Scaled to all nodes when some were killed (their counters are lost with them).
scale = len([k for k in dv["all_nodes"] if k.startswith("node")]) / len(alive) if alive else 0
p50, p99 = percentile(dv["after_due"], 0.5), percentile(dv["after_due"], 0.99)

print()
print("per stage (mean ms per duty, over the nodes that ran to the end):")
stages = ["fetch", "consensus", "exchange", "submit"]
print("  %-18s %s" % ("duty", " ".join("%10s" % s for s in stages)))
duties = sorted({dict(l)["duty"] for n in alive for (k, l) in n["metrics"] if k == "dv_stage_latency_seconds_count"})
for duty in duties:
    cells = []
    for s in stages:
        c, t = total("dv_stage_latency_seconds_count", duty=duty, stage=s), total("dv_stage_latency_seconds_sum", duty=duty, stage=s)
        cells.append("%10.0f" % (1000 * t / c) if c else "%10s" % "-")
    print("  %-18s %s" % (duty, " ".join(cells)))
print("per node:")
for name, n in sorted(dv["all_nodes"].items()):
    print("  %-8s cpu %8.0f ms  rss max %6.1f MB%s" % (name, n["cpu_ms"], n["rss_mb"], "  (killed)" if n["killed"] else ""))
    series = n.get("rss_series", [])
    if name.startswith("node") and series:
        # RSS at four points of the run: levelling off, or growing to the end.
        picks = [series[min(len(series) - 1, len(series) * q // 4)] for q in (1, 2, 3, 4)]
        print("           rss over the run: %s" % ", ".join("%d s %.0f MB" % (t, r) for t, r in picks))
print("  signatures combined per attestation: %.2f; chain CPU %d ms" % (sigs_per_att, dv["chain_cpu_ms"]))

fields = [("validators", validators), ("p50_after_due_ms", p50), ("p99_after_due_ms", p99),
          ("missed", dv["missed"]), ("other_missed", dv["other_missed"]),
          ("cpu_ms_per_attestation_node", "%.3f" % cpu_per_att), ("floor_ms", "%.3f" % floor), ("floor_distinct_ms", "%.3f" % floor_distinct),
          ("cpu_ratio", "%.2f" % ratio)]
if plain:
    pl = phase("plain")
    pp99 = percentile(pl["after_due"], 0.99)
    pcpu = mean([n["cpu_ms"] / n["attestations"] for n in pl["nodes"] if n["attestations"]])
    print("plain validator: p50 %d ms, p99 %d ms after due, missed %d, cpu %.3f ms per attestation" % (
        percentile(pl["after_due"], 0.5), pp99, pl["missed"], pcpu))
    fields += [("plain_p99_after_due_ms", pp99), ("dv_over_plain", "%.2f" % (p99 / pp99) if pp99 else "inf")]
fields += [("rss_mb_max", "%.0f" % max([n["rss_mb"] for n in alive] or [0])),
           ("consensus_msgs_per_slot", "%.0f" % (msgs * scale / slots)),
           ("wire_bytes_per_slot", "%.0f" % (wire * scale / slots))]
print("BENCH " + " ".join("%s=%s" % kv for kv in fields))
EOF
