#!/usr/bin/env bash
# One meta model for many widths: a width-96 target incubated by
#   (a) a matched-width meta model (width 96),
#   (b) a narrower meta model (width 48) through width adapters,
#   (c) E2E training of the target,
# on Fashion-MNIST, three seeds, equal target-size iterations (as in fashion-mnist.sh):
#   E2E: 900 steps | DI: PT 600 (4-block meta) + MT 450 per module + FT 450   (batch 64)
# Target: ViT 28x28x1, patch 7 (16 patches + class token), width 96, depth 8, 4 heads, split 4x2.
# Patch 7 (not 4) keeps three seeds x three arms near an hour on the 2-core machine.
#
#   bash bench/experiments/width-adapters.sh            # seeds 0 1 2 x {e2e, di-meta96, di-meta48}
#   SCALE=2 bash bench/experiments/width-adapters.sh    # the same grid with every step count doubled
#   bash bench/experiments/width-adapters.sh reuse      # seed 0: di-meta48-seed0's meta model (no new PT)
#                                                       # incubates widths 64 and 128, vs E2E at each
#   bash bench/experiments/width-adapters.sh summary    # the tables from the results.json files
#
# OUT (default .tmp/experiments/width-adapters) holds one folder per run. Run it from a clean
# checkout of one commit (see fashion-mnist.sh for the snapshot recipe).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-.tmp/experiments/width-adapters}
SEEDS=${SEEDS:-"0 1 2"}
SCALE=${SCALE:-1}
TAG=$([[ $SCALE == 1 ]] && echo "" || echo "-x$SCALE")
MODEL=(--config fashion-mnist --set model.width=96 --set model.depth=8 --set model.patchSize=7 --set modules=4)
DI_SET=(--set recipe.steps.pretrain=$((600 * SCALE)) --set recipe.steps.modular=$((450 * SCALE))
  --set recipe.steps.finetune=$((450 * SCALE)))

source bench/experiments/lib.sh

case "${1:-main}" in
  main)
    for s in $SEEDS; do
      run "di-meta48$TAG-seed$s" incubate "${MODEL[@]}" --seed "$s" --set meta.width=48 "${DI_SET[@]}"
      run "di-meta96$TAG-seed$s" incubate "${MODEL[@]}" --seed "$s" "${DI_SET[@]}"
      run "e2e$TAG-seed$s" train "${MODEL[@]}" --seed "$s" --set recipe.steps.e2e=$((900 * SCALE))
    done
    summary ;;
  reuse)
    META="$OUT/di-meta48-seed0/pretrain.safetensors"
    [[ -f $META ]] || { echo "run the main grid first (needs $META)" >&2; exit 1; }
    for w in 64 128; do
      WIDTH=(--config fashion-mnist --set model.width=$w --set model.depth=8 --set model.patchSize=7 --set modules=4)
      run "reuse48-w$w-seed0" incubate "${WIDTH[@]}" --seed 0 --meta "$META" "${DI_SET[@]}"
      run "e2e-w$w-seed0" train "${WIDTH[@]}" --seed 0 --set recipe.steps.e2e=900
    done
    summary ;;
  summary) summary ;;
  *) echo "usage: $0 [main|reuse|summary]" >&2; exit 2 ;;
esac
