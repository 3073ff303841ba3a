#!/usr/bin/env bash
# How the cost grows (issue 18): runs the store bench at 1,000, 10,000 and 100,000 contacts and
# streetsync's side of the side-by-side bench (no peer) at the same sizes, on two cores and with
# device B on one core (`taskset -c 0`, a stand-in for a phone), then writes
# `target/bench/scaling.json` and prints the table for docs/benchmarks.md.
#
# A bench, not a test: about 30 minutes on the project machine, most of it saving and uploading
# 100,000 contacts. `SCALING_NS` overrides the sizes (comma-separated, at least two);
# `SCALING_ONE_CORE_NS` those of the one-core run (default: the same).
set -euo pipefail
cd "$(dirname "$0")/../.."
NS="${SCALING_NS:-1000,10000,100000}"
ONE_CORE_NS="${SCALING_ONE_CORE_NS:-$NS}"
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
OUT="$TARGET_DIR/bench"
RUNS="$OUT/scaling-runs"
mkdir -p "$RUNS"

for n in ${NS//,/ }; do
  echo "== store bench, $n contacts"
  STORE_BENCH_CONTACTS="$n" cargo bench -q -p streetsync-core --bench store
  cp "$OUT/store.json" "$RUNS/store_$n.json"
done

echo "== side-by-side, streetsync alone, two cores"
SIDE_BY_SIDE_PEER=0 SIDE_BY_SIDE_NS="$NS" SIDE_BY_SIDE_EDITS=20 SIDE_BY_SIDE_TIMEOUT_SECS=1200 \
  cargo bench -q -p streetsync-tests --bench side_by_side
cp "$OUT/side_by_side.json" "$RUNS/bootstrap_two_cores.json"

echo "== side-by-side, streetsync alone, device B on one core"
SIDE_BY_SIDE_PEER=0 SIDE_BY_SIDE_NS="$ONE_CORE_NS" SIDE_BY_SIDE_EDITS=5 SIDE_BY_SIDE_TIMEOUT_SECS=1200 \
  SIDE_BY_SIDE_B_WRAPPER="taskset -c 0" \
  cargo bench -q -p streetsync-tests --bench side_by_side
cp "$OUT/side_by_side.json" "$RUNS/bootstrap_one_core.json"

python3 tests/scaling/table.py "$RUNS" "$NS" "$OUT/scaling.json"
