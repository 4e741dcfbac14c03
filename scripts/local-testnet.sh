#!/usr/bin/env bash
# Local DV testnet. Today it builds dvnode and creates a 4-node cluster
# (threshold 3) over interop validators 0..3 on the minimal preset, in
# ./testnet. Starting the nodes against a simulated beacon chain comes with
# `dvnode run` (not implemented yet); this script says so rather than pretend.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-testnet}
NODES=${NODES:-4}
VALIDATORS=${VALIDATORS:-0..4}

cargo build --release -p dvnode
./target/release/dvnode create cluster \
    --interop-validators "$VALIDATORS" \
    --nodes "$NODES" \
    --network minimal \
    --insecure-keystores \
    --force \
    --out "$OUT"

echo
echo "cluster written to $OUT/node0 .. $OUT/node$((NODES - 1))"
echo "note: 'dvnode run' (the node itself) is not implemented yet, so no duties are performed."
