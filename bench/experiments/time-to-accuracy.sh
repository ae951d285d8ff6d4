#!/usr/bin/env bash
# Time to accuracy (issue 15): how soon Deep Incubation reaches the E2E run's final accuracy.
# Target: a deep, narrow ViT on Fashion-MNIST — depth 24, width 32 (4 heads, patch 4), split
# 4 x 6 blocks — trained E2E and by incubation with WORKERS local MT workers (child processes,
# one ORT thread each: incubate.ts splits the threads; PT, FT and E2E use all cores), three
# seeds. Same target-size iterations shape as fashion-mnist.sh:
#   E2E: 900 steps | DI: PT 600 (4-block meta) + MT 450 per module + FT 450   (batch 64)
# Every job scores a fixed subset of the test set (first 500 images) every 50 steps: a few
# forward batches per 50 train steps, about 5 % of a job's time, the same share in both arms.
# Sized for 25-30 min on a quiet 2-core machine, estimated, not measured quiet: under load,
# 12 E2E steps of this target ran at 0.7x the step time of the fashion-mnist preset (depth 16,
# width 64), which RESULTS.md measured at 3.5 steps/s quiet; so E2E ~0.2 s/step, ~3.5 min with
# evaluation, DI ~4.5 min (PT ~0.5, two MT waves ~2, FT ~1.7) per seed. Time one seed first
# (SEEDS=0) and scale the steps if it is far off.
#
#   bash bench/experiments/time-to-accuracy.sh            # seeds 0 1 2 x {e2e, di}, then the summary
#   bash bench/experiments/time-to-accuracy.sh summary    # speed-ups (median, min-max) + the SVG
#   bash bench/experiments/time-to-accuracy.sh tiny       # seconds-long runs that prove the script
#                                                         # works end to end (own OUT and SVG)
#
# The summary (time-to-accuracy-summary.ts) prints, per seed, `incubator compare`'s numbers —
# the critical-path (and compute) seconds incubation needs to reach E2E's final accuracy on the
# subset, divided into E2E's — their median and min-max over seeds, both runs' measured wall
# time on this machine, and writes the curves to SVG (default bench/results/time-to-accuracy.svg).
# OUT (default .tmp/experiments/time-to-accuracy) holds one folder per run; a run whose
# results.json exists is skipped. Run it from a clean checkout (see fashion-mnist.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-main}
EXTRA=()
if [[ $MODE == tiny ]]; then
  OUT=${OUT:-.tmp/experiments/time-to-accuracy-tiny}
  SVG=${SVG:-$OUT/time-to-accuracy.svg}
  SEEDS=${SEEDS:-"0 1"}
  DEPTH=8 WIDTH=32 E2E_STEPS=12 PT_STEPS=6 MT_STEPS=4 FT_STEPS=6 EVAL_EVERY=3 EVAL_SUBSET=64
  EXTRA=(--set evalLimit=256)
fi
OUT=${OUT:-.tmp/experiments/time-to-accuracy}
SVG=${SVG:-bench/results/time-to-accuracy.svg}
SEEDS=${SEEDS:-"0 1 2"}
DEPTH=${DEPTH:-24}
WIDTH=${WIDTH:-32}
MODULES=${MODULES:-4}
WORKERS=${WORKERS:-2}
E2E_STEPS=${E2E_STEPS:-900}
PT_STEPS=${PT_STEPS:-600}
MT_STEPS=${MT_STEPS:-450}
FT_STEPS=${FT_STEPS:-450}
EVAL_EVERY=${EVAL_EVERY:-50}
EVAL_SUBSET=${EVAL_SUBSET:-500}
MODEL=(--config fashion-mnist --set model.depth="$DEPTH" --set model.width="$WIDTH" --set modules="$MODULES"
  --set recipe.evalEvery="$EVAL_EVERY" --set recipe.evalSubset="$EVAL_SUBSET" "${EXTRA[@]}")
DI_SET=(--workers "$WORKERS" --set recipe.steps.pretrain="$PT_STEPS" --set recipe.steps.modular="$MT_STEPS"
  --set recipe.steps.finetune="$FT_STEPS")

source bench/experiments/lib.sh

tta_summary() { npx tsx bench/experiments/time-to-accuracy-summary.ts "$OUT" "$SVG"; }

case "$MODE" in
  main | tiny)
    for s in $SEEDS; do
      run "e2e-seed$s" train "${MODEL[@]}" --seed "$s" --set recipe.steps.e2e="$E2E_STEPS"
      run "di-seed$s" incubate "${MODEL[@]}" --seed "$s" "${DI_SET[@]}"
    done
    tta_summary ;;
  summary) tta_summary ;;
  *) echo "usage: $0 [main|summary|tiny]" >&2; exit 2 ;;
esac
