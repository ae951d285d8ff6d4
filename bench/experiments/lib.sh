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

