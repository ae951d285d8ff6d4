#!/usr/bin/env bash
# The split planner against the even split (issue 15), on the time-to-accuracy target: depth 24,
# width 32, K modules, one frozen meta model shared by both arms (`--meta`, so PT is not repeated
# and both arms' hybrids hold the same meta blocks). Each arm trains its K MT jobs one after the
# other (`-w 1`, every job alone with all threads: the per-job time a K-worker platform would see,
# without two jobs sharing 2 cores), then a 1-step FT. Arms alternate, even then planned, PAIRS
# times. What counts is the slowest MT job: on K workers it is the MT stage's critical path.
#
#   bash bench/experiments/split-planner.sh            # the pairs, then the summary
#   bash bench/experiments/split-planner.sh summary    # per pair: split, seconds per MT job, slowest
#   bash bench/experiments/split-planner.sh tiny       # seconds-long runs proving the script
#
# META defaults to seed 2's meta model of time-to-accuracy.sh; when it does not exist a PT job
# makes one first (PT_STEPS). OUT holds one folder per run; a run whose results.json exists is
# skipped, so an interrupted study resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-main}
EXTRA=()
if [[ $MODE == tiny ]]; then
  OUT=${OUT:-.tmp/experiments/split-planner-tiny}
  DEPTH=8 PAIRS=1 MT_STEPS=4 PT_STEPS=6 META=${META:-$OUT/meta/pretrain.safetensors}
  EXTRA=(--set evalLimit=256)
fi
OUT=${OUT:-.tmp/experiments/split-planner}
META=${META:-.tmp/experiments/time-to-accuracy/di-seed2/pretrain.safetensors}
DEPTH=${DEPTH:-24}
WIDTH=${WIDTH:-32}
K=${K:-4}
PAIRS=${PAIRS:-3}
PT_STEPS=${PT_STEPS:-600}
MT_STEPS=${MT_STEPS:-300}
SEED=${SEED:-0}
MODEL=(--config fashion-mnist --set model.depth="$DEPTH" --set model.width="$WIDTH" --seed "$SEED"
  --set recipe.evalEvery=0 --set recipe.steps.modular="$MT_STEPS" --set recipe.steps.finetune=1 "${EXTRA[@]}")

source bench/experiments/lib.sh

planner_summary() {
  node - "$OUT" <<'JS'
const fs = require("node:fs"), path = require("node:path");
const out = process.argv[2];
const read = (d) => JSON.parse(fs.readFileSync(path.join(out, d, "results.json"), "utf8"));
const mt = (r) => Object.entries(r.stages).filter(([k]) => k.startsWith("module-")).map(([, v]) => v.wallSeconds);
const f = (x) => x.toFixed(1);
const ratios = [];
console.log("| pair | even split | even MT s per job | even slowest | planned split | predicted s per job | measured s per job | planned slowest | planned / even |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (let p = 1; fs.existsSync(path.join(out, `planned-pair${p}`, "results.json")); p++) {
  if (!fs.existsSync(path.join(out, `even-pair${p}`, "results.json"))) break;
  const even = read(`even-pair${p}`), planned = read(`planned-pair${p}`);
  const e = mt(even), m = mt(planned), ratio = Math.max(...m) / Math.max(...e);
  ratios.push(ratio);
  console.log(`| ${p} | ${even.config.split.join(",")} | ${e.map(f).join(" / ")} | ${f(Math.max(...e))} | ${planned.plan.split.join(",")} | ${planned.plan.predictedSeconds.map(f).join(" / ")} | ${m.map(f).join(" / ")} | ${f(Math.max(...m))} | ${ratio.toFixed(3)} |`);
}
if (ratios.length) {
  const s = [...ratios].sort((a, b) => a - b), mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  console.log(`slowest MT job, planned / even: median ${median.toFixed(3)}, min–max ${s[0].toFixed(3)}–${s.at(-1).toFixed(3)} over ${s.length} pair(s)`);
}
JS
}

case "$MODE" in
  main | tiny)
    if [[ ! -f $META ]]; then
      [[ $MODE == tiny ]] || echo "no meta model at $META: pre-training one ($PT_STEPS steps)" >&2
      run meta incubate "${MODEL[@]}" --set modules="$K" --set recipe.steps.pretrain="$PT_STEPS" \
        --set recipe.steps.modular=1
      META=$OUT/meta/pretrain.safetensors
    fi
    for p in $(seq 1 "$PAIRS"); do
      run "even-pair$p" incubate "${MODEL[@]}" --meta "$META" -w 1 --set modules="$K"
      run "planned-pair$p" incubate "${MODEL[@]}" --meta "$META" -w 1 --set "modules={\"auto\":$K}"
    done
    planner_summary ;;
  summary) planner_summary ;;
  *) echo "usage: $0 [main|summary|tiny]" >&2; exit 2 ;;
esac
