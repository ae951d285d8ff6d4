/**
 * The cost model against real MT jobs: measure a small model on this machine, plan a split,
 * then train every module of that split for real and compare each job's wall time with its
 * prediction. The machine is shared and loaded while tests run, so the bound is loose (2×):
 * a sanity check that the pieces add up to a real job, not a benchmark.
 */
import { describe, expect, it } from "vitest";
import { loadPlannedRunConfig } from "../../src/incubation/config.ts";
import {
  leastSquares,
  measureCostModel,
  mtFeatures,
  nonNegativeLeastSquares,
} from "../../src/incubation/cost-model.ts";
import { type JobSpec, runJob } from "../../src/incubation/job.ts";
import { tempDir } from "../data/helpers.ts";

const SETS = [
  "model.depth=6",
  "model.width=32",
  "model.heads=2",
  "recipe.batchSize=16",
  "recipe.steps.pretrain=2",
  "recipe.steps.modular=100",
  "dataset.length=512",
  "threads=1",
];

describe("fitting the pieces", () => {
  const probes = [
    mtFeatures(2, 0, 1),
    mtFeatures(2, 1, 1),
    mtFeatures(3, 0, 1),
    mtFeatures(3, 2, 1),
    mtFeatures(3, 1, 1),
    mtFeatures(3, 1, 3),
    mtFeatures(5, 1, 1),
    mtFeatures(5, 3, 1),
  ];
  // base, block, frozenForward, frozenBackward, embed, head
  const truth = [0.01, 0.02, 0.005, 0.009, 0.003, 0.004];
  const timesOf = (x: number[]) => probes.map((r) => r.reduce((s, v, j) => s + v * x[j]!, 0));

  it("recovers every piece from exact probe timings", () => {
    for (const solve of [leastSquares, nonNegativeLeastSquares]) {
      const x = solve(probes, timesOf(truth));
      for (const [j, v] of x.entries()) expect(v).toBeCloseTo(truth[j]!, 10);
    }
  });

  it("never gives a piece negative time: a negative fit is fixed at 0 and the rest refitted", () => {
    const y = timesOf([0.01, 0.02, 0.005, 0.009, 0, 0.004]);
    y[0]! -= 0.006; // one noisy probe that would make the embedding negative
    expect(leastSquares(probes, y)[4]).toBeLessThan(0);
    const x = nonNegativeLeastSquares(probes, y);
    expect(Math.min(...x)).toBeGreaterThanOrEqual(0);
    expect(x[4]).toBe(0);
    expect(x[1]).toBeCloseTo(0.02, 2);
  });
});

describe("the cost model on a real model", () => {
  it("predicts each MT job of the planned split within 2× of its measured wall time", async () => {
    const config = await loadPlannedRunConfig("demo", [...SETS, 'modules={"auto":3}'], { threads: 1 });
    const plan = config.plan!;
    const model = await measureCostModel({ target: config.target, recipe: config.recipe, threads: 1 });
    console.log(`cost model (cached, not measured again): ${JSON.stringify(model)}`);
    expect(plan.split).toHaveLength(3);
    expect(config.split).toEqual(plan.split);
    expect(config.meta.depth).toBe(3);
    expect(Math.max(...plan.predictedSeconds)).toBeLessThanOrEqual(Math.max(...plan.even.predictedSeconds));

    const outDir = tempDir("cost-model");
    const base = {
      target: config.target,
      meta: config.meta,
      split: config.split,
      recipe: config.recipe,
      seed: 0,
      outDir,
      threads: 1,
      dataset: config.dataset,
    };
    const pt = await runJob({ ...base, phase: "pretrain" } satisfies JobSpec);
    const measured: number[] = [];
    for (let i = 0; i < plan.split.length; i++) {
      const r = await runJob({ ...base, phase: "modular", moduleIndex: i, metaWeights: pt.weightsPath });
      measured.push(r.wallSeconds);
    }
    const ratios = plan.predictedSeconds.map((p, i) => p / measured[i]!);
    console.log(
      `planned ${JSON.stringify(plan.split)}: predicted ${plan.predictedSeconds.map((s) => s.toFixed(2))} s, ` +
        `measured ${measured.map((s) => s.toFixed(2))} s (under test load)`,
    );
    for (const ratio of ratios) {
      expect(ratio).toBeGreaterThan(0.5);
      expect(ratio).toBeLessThan(2);
    }
  }, 300_000);

  it('"auto" chooses K among the candidates and a split of the whole depth', async () => {
    const config = await loadPlannedRunConfig("demo", [...SETS, "modules=auto"], { threads: 1 });
    const plan = config.plan!;
    expect(plan.split.length).toBeGreaterThanOrEqual(2);
    expect(plan.split.length).toBeLessThanOrEqual(6);
    expect(plan.split.reduce((a, b) => a + b, 0)).toBe(6);
    expect(plan.predictedPretrainSeconds).toBeGreaterThan(0);
    expect(config.meta.depth).toBe(plan.split.length);
  }, 120_000);
});
