/**
 * The split planner on synthetic costs: it balances what equal block counts do not, it is exact
 * (checked against every split of a small model), and it refuses what cannot be split.
 */
import { describe, expect, it } from "vitest";
import { resolveSplit } from "../../src/incubation/modules.ts";
import {
  balanceSplit,
  chooseModuleCount,
  type MtJobCost,
  planSplit,
} from "../../src/incubation/split-planner.ts";

/** Every split of `depth` into `k` parts ≥ 1. */
function* compositions(depth: number, k: number): Generator<number[]> {
  if (k === 1) {
    yield [depth];
    return;
  }
  for (let first = 1; first <= depth - k + 1; first++)
    for (const rest of compositions(depth - first, k - 1)) yield [first, ...rest];
}

const slowest = (split: number[], k: number, cost: MtJobCost) =>
  Math.max(...split.map((n, i) => cost(k, i, n)));

/** Shaped like the measured model: outer modules own embedding/head, frozen blocks after slot i cost more than before. */
const hybridLike: MtJobCost = (k, i, n) =>
  1 + 2 * n + 0.3 * i + 0.8 * (k - 1 - i) + (i === 0 ? 1.5 : 0) + (i === k - 1 ? 0.5 : 0);

describe("balanceSplit", () => {
  it("splits evenly when every job costs the same per block", () => {
    const flat: MtJobCost = (_k, _i, n) => 5 + n;
    expect(balanceSplit(12, 4, flat)).toEqual({ split: [3, 3, 3, 3], seconds: [8, 8, 8, 8] });
  });

  it("gives the outer modules fewer blocks when they also carry the embedding and the head", () => {
    const outerHeavy: MtJobCost = (k, i, n) => n + (i === 0 ? 2 : 0) + (i === k - 1 ? 2 : 0);
    const plan = balanceSplit(12, 4, outerHeavy);
    expect(plan.split).toEqual([2, 4, 4, 2]);
    expect(plan.seconds).toEqual([4, 4, 4, 4]);
    expect(slowest(resolveSplit(12, 4), 4, outerHeavy)).toBe(5);
  });

  it("finds the smallest possible slowest job (every split of 10 blocks into 4 checked)", () => {
    const best = Math.min(...[...compositions(10, 4)].map((s) => slowest(s, 4, hybridLike)));
    const plan = balanceSplit(10, 4, hybridLike);
    expect(plan.split.reduce((a, b) => a + b, 0)).toBe(10);
    expect(Math.max(...plan.seconds)).toBeCloseTo(best, 12);
    expect(Math.max(...plan.seconds)).toBeLessThanOrEqual(slowest(resolveSplit(10, 4), 4, hybridLike));
  });

  it("refuses more modules than blocks, naming modules and the fix", () => {
    expect(() => balanceSplit(3, 4, hybridLike)).toThrow(
      "modules (4) cannot exceed depth (3): each module needs ≥ 1 block; set modules to at most 3",
    );
    expect(() => balanceSplit(3, 0, hybridLike)).toThrow("modules must be a positive integer, got 0");
  });

  it("plans depth 1: one module with the one block", () => {
    expect(balanceSplit(1, 1, hybridLike).split).toEqual([1]);
    expect(planSplit(1, "auto", hybridLike).split).toEqual([1]);
  });
});

describe("choosing K", () => {
  it("trades fewer blocks per job against a meta model that costs more to pre-train per block", () => {
    // MT: 1 s per block plus 0.5 s per frozen meta block; PT: 3 s per meta block.
    const cost: MtJobCost = (k, _i, n) => n + 0.5 * (k - 1);
    const pt = (k: number) => 3 * k;
    // K=2: 6 + 12.5 = 18.5; K=3: 9 + 9 = 18; K=4: 12 + 7.5 = 19.5 → 3.
    expect(chooseModuleCount(24, cost, pt)).toBe(3);
    // Without a PT cost: K=6 (4 + 2.5) and K=8 (3 + 3.5) tie at 6.5 s; ties go to fewer jobs.
    expect(chooseModuleCount(24, cost, () => 0)).toBe(6);
    // Never more modules than blocks.
    expect(
      chooseModuleCount(
        5,
        (_k, _i, n) => n,
        () => 0,
      ),
    ).toBe(5);
  });

  it("reports the plan with its even-split baseline, predicted by the same costs", () => {
    const plan = planSplit(16, 4, hybridLike, (k) => 10 * k);
    expect(plan.even.split).toEqual([4, 4, 4, 4]);
    expect(plan.even.predictedSeconds).toEqual([4, 4, 4, 4].map((n, i) => hybridLike(4, i, n)));
    expect(plan.predictedSeconds).toEqual(plan.split.map((n, i) => hybridLike(4, i, n)));
    expect(Math.max(...plan.predictedSeconds)).toBeLessThanOrEqual(Math.max(...plan.even.predictedSeconds));
    expect(plan.predictedPretrainSeconds).toBe(40);
  });
});
