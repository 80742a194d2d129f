#!/usr/bin/env bash
# Alternates two builds of authgraph through the same scenarios, ROUNDS times
# each (A B A B ...), and prints each scenario's median req/s and p99 per
# build and the ratio B/A: on a shared, noisy machine only ratios measured
# in one run mean anything.
#
#   bench/compare.sh OLD_BINARY NEW_BINARY
#   ROUNDS=5 SCENARIOS="me verifyToken refreshToken" DURATION=8 bench/compare.sh A B
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/compare.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
A=$(realpath "$1")
B=$(realpath "$2")
ROUNDS=${ROUNDS:-5}
export SCENARIOS=${SCENARIOS:-me verifyToken refreshToken}
export MICRO=0
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    echo "== round $round, $side"
    BIN=$bin RESULTS_FILE="$OUT/$side.$round" bench/run.sh >/dev/null
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {"A": {}, "B": {}}
for side in runs:
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{side}.{r}"):
            name, rps, p50, p99, errors, rss = line.rstrip("\n").split("\t")
            runs[side].setdefault(name, []).append((float(rps), float(p99), int(errors)))
print(f"{'scenario':<24} {'A req/s':>10} {'B req/s':>10} {'B/A':>6} {'A p99':>8} {'B p99':>8}  (medians of {rounds})")
for name in runs["A"]:
    a, b = runs["A"][name], runs["B"][name]
    ma, mb = statistics.median(x[0] for x in a), statistics.median(x[0] for x in b)
    pa, pb = statistics.median(x[1] for x in a), statistics.median(x[1] for x in b)
    errors = sum(x[2] for x in a + b)
    print(f"{name:<24} {ma:>10.0f} {mb:>10.0f} {mb / ma:>6.3f} {pa:>8.2f} {pb:>8.2f}" + (f"  errors {errors}" if errors else ""))
    print(f"{'':<24} A: {' '.join(f'{x[0]:.0f}' for x in a)}  B: {' '.join(f'{x[0]:.0f}' for x in b)}")
PY
