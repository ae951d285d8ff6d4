#!/usr/bin/env bash
# E2E vs Deep Incubation (DI) vs decentralised incubation (DMT) on the `fashion-mnist` preset
# (ViT 28x28x1, patch 4, width 64, depth 16, 4 heads, split 4x4), equal target-size iterations:
#   E2E: 900 steps | DI/DMT: PT 600 (4-block meta) + MT 450 per module + FT 450   (batch 64)
# Runs one job at a time (2-core machine). Skips runs whose results.json already exists, so it
# can be resumed; delete the output folder to start over. Evaluation: full 10k test set.
#
#   bash bench/experiments/fashion-mnist.sh              # main grid: seeds 0 1 2 x {e2e, di, dmt}
#   bash bench/experiments/fashion-mnist.sh depth8       # extra: depth 8 (4 modules x 2 blocks), seed 0, e2e vs di
#   bash bench/experiments/fashion-mnist.sh summary      # print the tables from the results.json files
#
# OUT (default .tmp/experiments/fashion-mnist) holds one folder per run: results.json, events.jsonl.
# Run it from a clean checkout of one commit: the engine is loaded from the tree the script sits in,
# and uncommitted engine edits change both speed and float rounding. The RESULTS.md numbers came from
#   git archive 591db34 | tar -x -C SNAP; ln -s "$PWD/node_modules" SNAP/; cp -r src/generated SNAP/src/
#   cp bench/experiments/fashion-mnist.sh SNAP/bench/experiments/; OUT=$PWD/.tmp/experiments/fashion-mnist bash SNAP/bench/experiments/fashion-mnist.sh
# (seed-0 runs: the live working tree, see RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-.tmp/experiments/fashion-mnist}
SEEDS=${SEEDS:-"0 1 2"}
E2E_STEPS=900
PT_STEPS=600
MT_STEPS=450
FT_STEPS=450
DI_SET=(--set recipe.steps.pretrain=$PT_STEPS --set recipe.steps.modular=$MT_STEPS --set recipe.steps.finetune=$FT_STEPS)

run() { # name, then the incubator arguments
  local name=$1; shift
  local dir="$OUT/$name"
  if [[ -f "$dir/results.json" ]]; then echo "skip $name (done)"; return; fi
  mkdir -p "$dir"
  echo "$(date -u +%FT%TZ) start $name: incubator $*"
  node bin/incubator.js "$@" --out "$dir" --json >"$dir/events.jsonl" 2>"$dir/stderr.txt"
  echo "$(date -u +%FT%TZ) done  $name: $(node -e 'const r=require(require("node:path").resolve(process.argv[1]));console.log(`acc ${r.accuracy} total ${r.totalWallSeconds.toFixed(1)} s critical ${r.criticalPathSeconds.toFixed(1)} s`)' "$dir/results.json")"
}

summary() {
  node - "$OUT" <<'JS'
const fs = require("node:fs"), path = require("node:path");
const out = process.argv[2];
const runs = fs.readdirSync(out).filter((d) => fs.existsSync(path.join(out, d, "results.json")));
const groups = {};
for (const d of runs.sort()) {
  const m = d.match(/^(.*)-seed(\d+)$/);
  if (!m) continue;
  const r = JSON.parse(fs.readFileSync(path.join(out, d, "results.json"), "utf8"));
  (groups[m[1]] ??= []).push({ seed: +m[2], r });
}
const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
const std = (a) => (a.length < 2 ? 0 : Math.sqrt(a.reduce((s, x) => s + (x - mean(a)) ** 2, 0) / (a.length - 1)));
for (const [g, list] of Object.entries(groups)) {
  const acc = list.map((x) => x.r.accuracy * 100);
  console.log(`\n## ${g}`);
  console.log(`accuracy per seed: ${list.map((x) => `s${x.seed} ${(x.r.accuracy * 100).toFixed(2)}`).join(", ")}`);
  console.log(`mean ${mean(acc).toFixed(2)} ± ${std(acc).toFixed(2)} (sample std), min–max ${Math.min(...acc).toFixed(2)}–${Math.max(...acc).toFixed(2)}`);
  const stages = Object.keys(list[0].r.stages);
  for (const s of stages) {
    const w = list.map((x) => x.r.stages[s].wallSeconds);
    console.log(`  ${s.padEnd(9)} steps ${String(list[0].r.stages[s].steps).padStart(4)}  wall ${mean(w).toFixed(1)} s (${w.map((v) => v.toFixed(1)).join(", ")})`);
  }
  const mt = list.map((x) => Object.entries(x.r.stages).filter(([k]) => k.startsWith("module-")).reduce((s, [, v]) => s + v.wallSeconds, 0));
  if (mt[0] > 0) console.log(`  MT sum    wall ${mean(mt).toFixed(1)} s`);
  const tot = list.map((x) => x.r.totalWallSeconds), cp = list.map((x) => x.r.criticalPathSeconds);
  console.log(`  total     ${mean(tot).toFixed(1)} s (${tot.map((v) => v.toFixed(1)).join(", ")})`);
  console.log(`  critical  ${mean(cp).toFixed(1)} s (${cp.map((v) => v.toFixed(1)).join(", ")})`);
  console.log(`  test loss ${list.map((x) => x.r.loss.toFixed(4)).join(", ")}`);
}
JS
}

case "${1:-main}" in
  main)
    # Order: seed 0 of all three, then E2E and DI for the other seeds, then DMT for the other
    # seeds, so that a run cut short still has E2E vs DI on every seed it reached.
    e2e() { run "e2e-d16-seed$1" train --config fashion-mnist --seed "$1" --set recipe.steps.e2e=$E2E_STEPS; }
    di() { run "di-d16-seed$1" incubate --config fashion-mnist --seed "$1" "${DI_SET[@]}"; }
    dmt() { run "dmt-d16-seed$1" incubate --config fashion-mnist --seed "$1" --decentralized "${DI_SET[@]}"; }
    read -ra S <<<"$SEEDS"
    e2e "${S[0]}"; di "${S[0]}"; dmt "${S[0]}"
    for s in "${S[@]:1}"; do e2e "$s"; di "$s"; done
    for s in "${S[@]:1}"; do dmt "$s"; done
    summary ;;
  depth8)
    for s in ${SEEDS_D8:-0}; do
      run "e2e-d8-seed$s" train --config fashion-mnist --seed "$s" --set model.depth=8 --set modules=4 --set recipe.steps.e2e=$E2E_STEPS
      run "di-d8-seed$s" incubate --config fashion-mnist --seed "$s" --set model.depth=8 --set modules=4 "${DI_SET[@]}"
    done
    summary ;;
  summary) summary ;;
  *) echo "usage: $0 [main|depth8|summary]" >&2; exit 2 ;;
esac
