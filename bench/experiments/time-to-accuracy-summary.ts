/**
 * The summary of time-to-accuracy.sh: per seed, the E2E run against the incubation run
 * (`incubator compare`'s numbers: src/incubation/time-to-accuracy.ts), the speed-up at equal
 * accuracy on the critical path and in compute as median and min–max over seeds, and the
 * curves as an SVG (accuracy on the held-out subset against critical-path seconds; incubation
 * drawn along its critical path: PT, the slowest MT job, FT).
 *
 * Usage: npx tsx bench/experiments/time-to-accuracy-summary.ts <OUT> <file.svg>
 *   OUT holds e2e-seed<N>/ and di-seed<N>/ folders with results.json.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { type AccuracyPoint, criticalPathCurve } from "../../src/incubation/accuracy-curve.ts";
import {
  type Comparison,
  compareRuns,
  curveFinalAccuracy,
  loadComparedRun,
} from "../../src/incubation/time-to-accuracy.ts";

const [out = ".tmp/experiments/time-to-accuracy", svgPath = "bench/results/time-to-accuracy.svg"] =
  process.argv.slice(2);

const seeds = readdirSync(out)
  .flatMap((d) => /^e2e-seed(\d+)$/.exec(d)?.[1] ?? [])
  .map(Number)
  .filter((s) => existsSync(join(out, `e2e-seed${s}`, "results.json")))
  .filter((s) => existsSync(join(out, `di-seed${s}`, "results.json")))
  .sort((a, b) => a - b);
if (seeds.length === 0) throw new Error(`${out}: no seed with both e2e-seed<N> and di-seed<N> results`);

interface Pair {
  seed: number;
  comparison: Comparison;
  curves: { e2e: AccuracyPoint[]; di: AccuracyPoint[] };
  measured: { e2e: number; di: number };
}

const pairs: Pair[] = seeds.map((seed) => {
  const e2eDir = join(out, `e2e-seed${seed}`);
  const diDir = join(out, `di-seed${seed}`);
  const e2e = loadComparedRun(e2eDir, `e2e-seed${seed}`);
  const di = loadComparedRun(diDir, `di-seed${seed}`);
  const full = (dir: string) =>
    JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as {
      accuracyCurve: AccuracyPoint[];
      totalWallSeconds: number;
    };
  return {
    seed,
    comparison: compareRuns(di, e2e),
    curves: { e2e: full(e2eDir).accuracyCurve, di: criticalPathCurve(full(diDir).accuracyCurve) },
    measured: { e2e: full(e2eDir).totalWallSeconds, di: full(diDir).totalWallSeconds },
  };
});

const pct = (x: number | null) => (x === null ? "n/a" : `${(x * 100).toFixed(2)}`);
console.log(
  "| seed | E2E final % (subset) | DI final % (subset) | E2E to target s | DI critical path to target s | speed-up (critical path) | speed-up (compute) | measured wall E2E / DI s | DI computed critical path s |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const { seed, comparison: c, measured } of pairs) {
  const [cp, compute] = c.speedUps;
  const x = (s: typeof cp) => (s!.speedUp === null ? "not reached" : `${s!.speedUp.toFixed(2)}×`);
  console.log(
    `| ${seed} | ${pct(c.reference.accuracy)} (${pct(curveFinalAccuracy(c.reference))}) | ${pct(c.candidate.accuracy)} (${pct(curveFinalAccuracy(c.candidate))}) | ` +
      `${cp!.referenceSeconds.toFixed(1)} | ${cp!.candidateSeconds?.toFixed(1) ?? "not reached"} | ${x(cp)} | ${x(compute)} | ` +
      `${measured.e2e.toFixed(1)} / ${measured.di.toFixed(1)} | ${c.candidate.criticalPathSeconds.toFixed(1)} |`,
  );
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
for (const [i, name] of ["critical path", "compute"].entries()) {
  const ups = pairs.map((p) => p.comparison.speedUps[i]!.speedUp);
  const reached = ups.filter((u): u is number => u !== null);
  const missed = ups.length - reached.length;
  console.log(
    `speed-up at equal accuracy (${name}): ` +
      (reached.length
        ? `median ${median(reached).toFixed(2)}×, min–max ${Math.min(...reached).toFixed(2)}–${Math.max(...reached).toFixed(2)}× over ${reached.length} seed(s)`
        : "no seed reached E2E's final accuracy") +
      (missed ? `; not reached in ${missed} of ${ups.length}` : ""),
  );
}

// The SVG: one line per run, E2E in blue, incubation in orange, a dash pattern per seed.
const W = 720;
const H = 440;
const M = { left: 60, right: 190, top: 20, bottom: 50 };
const lines = pairs.flatMap((p, i) => [
  { label: `E2E seed ${p.seed}`, color: "#1f77b4", dash: i, points: p.curves.e2e },
  { label: `incubation seed ${p.seed}`, color: "#ff7f0e", dash: i, points: p.curves.di },
]);
const xMax = Math.max(...lines.flatMap((l) => l.points.map((p) => p.criticalPathSeconds)));
const yMin = Math.floor(Math.min(...lines.flatMap((l) => l.points.map((p) => p.accuracy))) * 10) / 10;
const x = (s: number) => M.left + (s / xMax) * (W - M.left - M.right);
const y = (a: number) => H - M.bottom - ((a - yMin) / (1 - yMin)) * (H - M.top - M.bottom);
const DASHES = ["", "6 3", "2 3", "8 3 2 3"];
const ticks = (max: number, n: number) => Array.from({ length: n + 1 }, (_, i) => (max * i) / n);
const svg = [
  `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  `<rect width="${W}" height="${H}" fill="white"/>`,
  `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="black"/>`,
  `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="black"/>`,
  ...ticks(xMax, 5).map(
    (s) =>
      `<text x="${x(s).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${s.toFixed(0)}</text>`,
  ),
  ...ticks(1 - yMin, 5).map(
    (d) =>
      `<text x="${M.left - 6}" y="${(y(yMin + d) + 4).toFixed(1)}" text-anchor="end">${((yMin + d) * 100).toFixed(0)}%</text>` +
      `<line x1="${M.left}" y1="${y(yMin + d).toFixed(1)}" x2="${W - M.right}" y2="${y(yMin + d).toFixed(1)}" stroke="#eee"/>`,
  ),
  `<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">critical-path seconds (incubation: PT, slowest MT job, FT)</text>`,
  `<text transform="translate(16 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">accuracy on the held-out subset</text>`,
  ...lines.map(
    (l) =>
      `<polyline fill="none" stroke="${l.color}" stroke-width="1.8" stroke-dasharray="${DASHES[l.dash % DASHES.length]}" points="${l.points
        .map((p) => `${x(p.criticalPathSeconds).toFixed(1)},${y(p.accuracy).toFixed(1)}`)
        .join(" ")}"/>`,
  ),
  ...lines.map((l, i) => {
    const ly = M.top + 10 + i * 18;
    const lx = W - M.right + 14;
    return (
      `<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" stroke="${l.color}" stroke-width="1.8" stroke-dasharray="${DASHES[l.dash % DASHES.length]}"/>` +
      `<text x="${lx + 34}" y="${ly + 4}">${l.label}</text>`
    );
  }),
  "</svg>",
];
mkdirSync(dirname(svgPath), { recursive: true });
writeFileSync(svgPath, `${svg.join("\n")}\n`);
console.log(`wrote ${svgPath}`);
