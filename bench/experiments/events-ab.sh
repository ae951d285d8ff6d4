#!/usr/bin/env bash
# Before/after pairs for `incubator bench events` (bench/RESULTS.md, "Run-event latency").
# BASE: a checkout of the build before the fan-out work, e.g.
#   git worktree add --detach ../incubator-base 0f3140f && ln -s "$PWD/node_modules" ../incubator-base/
#   mkdir -p ../incubator-base/src/generated && cp -r src/generated/* ../incubator-base/src/generated/
# Each pair runs the old build, then the new, on the same database server; JSON reports go to OUT.
# Usage: BASE=../incubator-base/src OUT=.tmp/bench-events bench/experiments/events-ab.sh [pairs] [subscribers] [bench options…]
#   e.g. … events-ab.sh 5 2000 --api-processes 2 --rate-per-run 1 --events 200
# A checkout made with `git archive` (no .git) works too; its report says "commit unknown".
set -euo pipefail
BASE=${BASE:?set BASE to the src folder of the old checkout}
OUT=${OUT:-.tmp/bench-events}
PAIRS=${1:-5}
SUBS=${2:-1000}
shift $(($# < 2 ? $# : 2))
mkdir -p "$OUT"
for i in $(seq 1 "$PAIRS"); do
  for build in old new; do
    src=$PWD/src
    [ "$build" = old ] && src=$BASE
    echo "pair $i: $build ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
    node bin/incubator.js bench events --subscribers "$SUBS" --api-src "$src" "$@" --json \
      > "$OUT/$build-$SUBS-$i.json" 2> "$OUT/$build-$SUBS-$i.log"
    tail -n 1 "$OUT/$build-$SUBS-$i.log" >&2
  done
done
