/**
 * The accuracy curve of a real local run (tiny model, few steps, two MT workers as child
 * processes): points at the configured interval in every job, monotone time, the critical-path
 * and compute offsets; then `incubator compare` on that run and an E2E run, and on two
 * results files written by hand (a speed-up, and "not reached").
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { comparisonJson, comparisonText } from "../../src/cli/compare.ts";
import { type AccuracyPoint, joinAttempts, runCurve } from "../../src/incubation/accuracy-curve.ts";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { type IncubationResult, incubate, trainEndToEnd } from "../../src/incubation/incubate.ts";
import { compareRuns, loadComparedRun } from "../../src/incubation/time-to-accuracy.ts";
import { spawnIncubator } from "../helpers/process.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "incubator-curve-"));

const EVERY = 4;
const STEPS = { pretrain: 10, modular: 6, finetune: 9, e2e: 12 };
const config = loadRunConfig("demo", [
  "model.depth=4",
  "model.width=32",
  "model.heads=2",
  "modules=2",
  "dataset.length=512",
  "evalDataset.length=200",
  "recipe.batchSize=32",
  `recipe.steps=${JSON.stringify(STEPS)}`,
  `recipe.evalEvery=${EVERY}`,
  "recipe.evalSubset=96",
]);

/** Steps the curve scores for a job of `total` steps: 0, every EVERY, and the last. */
const expectedSteps = (total: number) => [
  ...new Set([...Array.from({ length: Math.floor(total / EVERY) + 1 }, (_, i) => i * EVERY), total]),
];

const pointsOf = (curve: AccuracyPoint[], stage: string, moduleIndex: number | null = null) =>
  curve.filter((p) => p.stage === stage && p.moduleIndex === moduleIndex);

describe("the accuracy curve of a local run", () => {
  let incubation: IncubationResult;
  let incubationDir: string;

  it("records every job's points at the interval, on the critical path and compute clocks", async () => {
    incubationDir = tmp();
    incubation = await incubate({ ...config, outDir: incubationDir, workers: 2, threads: 1 });
    const written = JSON.parse(readFileSync(join(incubationDir, "results.json"), "utf8"));
    expect(written.accuracyCurve).toEqual(incubation.accuracyCurve);
    const curve = incubation.accuracyCurve;

    const pt = pointsOf(curve, "pretrain");
    const modules = [0, 1].map((i) => pointsOf(curve, "modular", i));
    const ft = pointsOf(curve, "finetune");
    expect(pt.map((p) => p.step)).toEqual(expectedSteps(STEPS.pretrain));
    for (const m of modules) expect(m.map((p) => p.step)).toEqual(expectedSteps(STEPS.modular));
    expect(ft.map((p) => p.step)).toEqual(expectedSteps(STEPS.finetune));
    expect(curve).toHaveLength(pt.length + modules[0]!.length + modules[1]!.length + ft.length);

    for (const p of curve) {
      expect(p.accuracy).toBeGreaterThanOrEqual(0);
      expect(p.accuracy).toBeLessThanOrEqual(1);
      expect(Number.isFinite(p.loss)).toBe(true);
    }
    // Time only moves forward within a job, and the whole curve is in critical-path order.
    for (const job of [pt, ...modules, ft]) {
      for (let i = 1; i < job.length; i++) {
        expect(job[i]!.jobSeconds).toBeGreaterThan(job[i - 1]!.jobSeconds);
        expect(job[i]!.computeSeconds).toBeGreaterThan(job[i - 1]!.computeSeconds);
      }
    }
    const cp = curve.map((p) => p.criticalPathSeconds);
    expect(cp).toEqual([...cp].sort((a, b) => a - b));

    // The offsets: MT starts where PT ended; FT where PT and the slowest MT job ended.
    const s = incubation.stages;
    const ptSeconds = s.pretrain!.wallSeconds;
    const mtSeconds = [s["module-0"]!.wallSeconds, s["module-1"]!.wallSeconds];
    for (const p of pt) expect(p.criticalPathSeconds).toBe(p.jobSeconds);
    for (const m of modules)
      for (const p of m) {
        expect(p.criticalPathSeconds).toBeCloseTo(ptSeconds + p.jobSeconds, 9);
        const alongside = mtSeconds.reduce((sum, d) => sum + Math.min(p.jobSeconds, d), 0);
        expect(p.computeSeconds).toBeCloseTo(ptSeconds + alongside, 9);
      }
    for (const p of ft) {
      expect(p.criticalPathSeconds).toBeCloseTo(ptSeconds + Math.max(...mtSeconds) + p.jobSeconds, 9);
      expect(p.computeSeconds).toBeCloseTo(ptSeconds + mtSeconds[0]! + mtSeconds[1]! + p.jobSeconds, 9);
    }
    // FT's last point is the delivered model, at the end of the run's critical path.
    expect(ft.at(-1)!.criticalPathSeconds).toBeLessThanOrEqual(incubation.criticalPathSeconds + 1e-9);
    expect(ft.at(-1)!.criticalPathSeconds).toBeGreaterThan(incubation.criticalPathSeconds - 5);
  }, 300_000);

  it("compares the run with an E2E run through `incubator compare`", async () => {
    const e2eDir = tmp();
    const e2e = await trainEndToEnd({ ...config, outDir: e2eDir, threads: 1 });
    expect(pointsOf(e2e.accuracyCurve, "e2e").map((p) => p.step)).toEqual(expectedSteps(STEPS.e2e));
    for (const p of e2e.accuracyCurve) expect(p.computeSeconds).toBe(p.criticalPathSeconds);

    // E2E given first: still the reference.
    const cli = spawnIncubator(["compare", e2eDir, join(incubationDir, "results.json"), "--json"], {});
    const code = await cli.exited;
    expect(code, cli.output()).toBe(0);
    const json = JSON.parse(cli.output().slice(cli.output().indexOf("{")));
    expect(json.reference).toMatchObject({ kind: "e2e", path: e2eDir, accuracy: e2e.accuracy });
    expect(json.candidate).toMatchObject({ kind: "incubation", accuracy: incubation.accuracy });
    expect(json.targetAccuracy).toBe(pointsOf(e2e.accuracyCurve, "e2e").at(-1)!.accuracy);
    expect(json.speedUps.map((s: { clock: string }) => s.clock)).toEqual([
      "criticalPathSeconds",
      "computeSeconds",
    ]);
  }, 300_000);
});

/** A results.json of `kind` whose delivered model's curve is `points` ([seconds, accuracy]). */
function resultsFile(dir: string, kind: "incubation" | "e2e", points: [number, number][]): string {
  const stage = kind === "e2e" ? "e2e" : "finetune";
  const offset = kind === "e2e" ? 0 : 10;
  const accuracyCurve = [
    // PT's meta model reaching 0.99 says nothing about the delivered model: ignored.
    ...(kind === "incubation"
      ? [
          {
            stage: "pretrain",
            moduleIndex: null,
            step: 5,
            jobSeconds: 5,
            criticalPathSeconds: 5,
            computeSeconds: 5,
            accuracy: 0.99,
            loss: 0.1,
          },
        ]
      : []),
    ...points.map(([seconds, accuracy], i) => ({
      stage,
      moduleIndex: null,
      step: i * 10,
      jobSeconds: seconds,
      criticalPathSeconds: offset + seconds,
      computeSeconds: 3 * offset + seconds,
      accuracy,
      loss: 1 - accuracy,
    })),
  ];
  mkdirSync(dir, { recursive: true });
  const last = points.at(-1)!;
  const file = join(dir, "results.json");
  writeFileSync(
    file,
    JSON.stringify({ kind, accuracy: last[1] - 0.01, criticalPathSeconds: offset + last[0], accuracyCurve }),
  );
  return file;
}

describe("incubator compare on two results files", () => {
  const dir = tmp();
  const e2e = resultsFile(join(dir, "e2e"), "e2e", [
    [0, 0.1],
    [40, 0.6],
    [80, 0.8],
    [100, 0.78],
  ]);

  it("divides E2E's time to its final accuracy by the incubation run's, on both clocks", () => {
    const inc = resultsFile(join(dir, "fast"), "incubation", [
      [0, 0.5],
      [10, 0.7],
      [20, 0.79],
      [30, 0.8],
    ]);
    const c = compareRuns(loadComparedRun(inc, "<a>"), loadComparedRun(e2e, "<b>"));
    // Target: E2E's final curve accuracy 0.78, first reached at 80 s (0.8 ≥ 0.78).
    expect(c.targetAccuracy).toBe(0.78);
    expect(c.reference.kind).toBe("e2e");
    // Incubation reaches 0.79 ≥ 0.78 at FT second 20: critical path 30 s, compute 50 s.
    expect(c.speedUps).toEqual([
      { clock: "criticalPathSeconds", referenceSeconds: 80, candidateSeconds: 30, speedUp: 80 / 30 },
      { clock: "computeSeconds", referenceSeconds: 80, candidateSeconds: 50, speedUp: 80 / 50 },
    ]);
    expect(comparisonText(c)).toContain("2.67×");
    expect(comparisonJson(c).candidate.curveFinalAccuracy).toBe(0.8);
  });

  it('says "not reached" when the incubation run never gets there', () => {
    const slow = resultsFile(join(dir, "slow"), "incubation", [
      [0, 0.3],
      [50, 0.7],
      [90, 0.77],
    ]);
    const c = compareRuns(loadComparedRun(e2e, "<a>"), loadComparedRun(slow, "<b>"));
    expect(c.candidate.label).toBe(slow);
    expect(c.speedUps.map((s) => [s.candidateSeconds, s.speedUp])).toEqual([
      [null, null],
      [null, null],
    ]);
    expect(comparisonText(c)).toMatch(/critical path\s+not reached \(the reference reaches it at 80\.0 s\)/);
  });

  it("names the argument whose file has no curve", () => {
    const old = join(dir, "old");
    mkdirSync(old);
    writeFileSync(
      join(old, "results.json"),
      JSON.stringify({ kind: "e2e", accuracy: 0.5, criticalPathSeconds: 3 }),
    );
    expect(() => loadComparedRun(old, "<b>")).toThrow(/^<b>: .*old\/results\.json has no accuracyCurve/);
    const empty = join(dir, "empty");
    mkdirSync(empty);
    writeFileSync(
      join(empty, "results.json"),
      JSON.stringify({ kind: "e2e", accuracy: 0.5, criticalPathSeconds: 3, accuracyCurve: [] }),
    );
    expect(() => loadComparedRun(empty, "<a>")).toThrow(
      /^<a>: .*no curve points of its final model.*evalEvery/,
    );
    expect(() => loadComparedRun(join(dir, "missing"), "<a>")).toThrow(/^<a>: .*missing does not exist/);
  });
});

describe("a run's curve from its jobs' points", () => {
  it("joins a retried job's attempts on one clock, dropping the failed attempt's points past the checkpoint", () => {
    const point = (step: number, seconds: number) => ({ step, seconds, accuracy: step / 100, loss: 1 });
    // Attempt 1 scored steps 0, 10, 20 and died after its checkpoint at 10; attempt 2 resumed at
    // 10 and scored 20 and 30 on a clock that started again.
    const joined = joinAttempts([point(0, 1), point(10, 5), point(20, 9), point(20, 4), point(30, 8)]);
    expect(joined.map((p) => [p.step, p.seconds])).toEqual([
      [0, 1],
      [10, 5],
      [20, 9],
      [30, 13],
    ]);
  });

  it("places a reuse run's modules (no PT) from zero and a running job by its last point", () => {
    const curve = runCurve([
      {
        phase: "modular",
        moduleIndex: 2,
        wallSeconds: 7,
        points: [{ step: 5, seconds: 6, accuracy: 0.5, loss: 1 }],
      },
      { phase: "finetune", wallSeconds: null, points: [{ step: 0, seconds: 2, accuracy: 0.6, loss: 1 }] },
    ]);
    expect(curve.map((p) => [p.stage, p.criticalPathSeconds, p.computeSeconds])).toEqual([
      ["modular", 6, 6],
      ["finetune", 9, 9],
    ]);
  });
});
