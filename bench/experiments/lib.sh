# Shared by the experiment scripts (sourced; needs OUT set): run one incubator command into
# $OUT/<name> unless its results.json exists, and print per-group tables from the results.

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


# Per-stage test accuracy of every finished run (`incubator eval-stages`: meta model, hybrid i,
# assembled before FT, final; E2E runs: final), then per group mean ± std and min–max of each
# stage across seeds. STAGES_LIMIT (default: all 10,000 test images) scores on the first N only.
# Each run's figures are kept in <run>/stages-<limit>.json and not recomputed; a run whose
# results.json records no config (older runs) is read with the flags `older_config <run>` echoes
# (define it in the script; default: none).
stages() {
  local limit=${STAGES_LIMIT:-all} dir name file
  for dir in "$OUT"/*-seed*/; do
    dir=${dir%/}; name=$(basename "$dir"); file="$dir/stages-$limit.json"
    [[ -f "$dir/results.json" && ! -f "$file" ]] || continue
    local flags=()
    if ! grep -q '"config"' "$dir/results.json" && declare -F older_config >/dev/null; then
      read -ra flags <<<"$(older_config "$name")"
    fi
    [[ $limit == all ]] || flags+=(--limit "$limit")
    echo "$(date -u +%FT%TZ) eval-stages $name ${flags[*]}" >&2
    node bin/incubator.js eval-stages "$dir" "${flags[@]}" --json >"$file.part" && mv "$file.part" "$file"
  done
  node - "$OUT" "$limit" <<'JS'
const fs = require("node:fs"), path = require("node:path");
const [out, limit] = process.argv.slice(2);
const groups = {};
for (const d of fs.readdirSync(out).sort()) {
  const m = d.match(/^(.*)-seed(\d+)$/), file = path.join(out, d, `stages-${limit}.json`);
  if (!m || !fs.existsSync(file)) continue;
  (groups[m[1]] ??= []).push({ seed: +m[2], r: JSON.parse(fs.readFileSync(file, "utf8")) });
}
const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
const std = (a) => (a.length < 2 ? 0 : Math.sqrt(a.reduce((s, x) => s + (x - mean(a)) ** 2, 0) / (a.length - 1)));
const f = (x) => x.toFixed(2);
for (const [g, list] of Object.entries(groups)) {
  console.log(`\n## ${g}: test accuracy (%) per stage, ${list[0].r.images} test images, seeds ${list.map((x) => x.seed).join(" ")}`);
  console.log(`stage       mean ± std      min–max        (range)  per seed`);
  for (const { stage } of list[0].r.stages) {
    const acc = list.map((x) => x.r.stages.find((s) => s.stage === stage).accuracy * 100);
    const lo = Math.min(...acc), hi = Math.max(...acc);
    console.log(`${stage.padEnd(10)} ${f(mean(acc)).padStart(6)} ± ${f(std(acc)).padEnd(5)}  ${f(lo)}–${f(hi)}  (${f(hi - lo).padStart(5)})  ${acc.map(f).join(" ")}`);
  }
}
JS
}
