/**
 * The split planner: module boundaries (and K, when asked) so that the K modular-training jobs
 * finish together.
 *
 * Equal block counts do not give equal MT jobs: job i also runs the frozen meta blocks of the
 * other stages (forward only before slot i, forward and backward-through after it — the loss
 * gradient must reach module i), and the outer modules own the embedding and the head. The
 * planner takes the cost of one job as a function of (K, i, blocks of module i) — measured on
 * this machine by `cost-model.ts`, or synthetic in tests — and minimises the slowest job.
 *
 * Pure: no ORT, no clock. Exact by dynamic programming over (module, blocks used so far): first
 * the smallest possible slowest job, then, among the splits that achieve it, the one with the
 * smallest sum of squared job times (the most even finish; the total is the same for every split
 * when the cost is linear in blocks, so this only spreads it).
 */

import { resolveSplit } from "./modules.ts";

/** Seconds MT job `index` of a K-module split takes when its module has `blocks` target blocks. */
export type MtJobCost = (k: number, index: number, blocks: number) => number;

export interface SplitPlan {
  /** Target blocks per module. */
  split: number[];
  /** Predicted wall seconds of each MT job (index = module). */
  predictedSeconds: number[];
  /** Predicted seconds of the meta model's pre-training (PT), when the cost model gives it. */
  predictedPretrainSeconds?: number;
  /** The same K split evenly (`resolveSplit`), predicted by the same model: what the plan is measured against. */
  even: { split: number[]; predictedSeconds: number[] };
}

/** Module counts `modules: "auto"` chooses among (each module ≥ 1 block, so at most the depth). */
export const AUTO_MODULE_CANDIDATES = [2, 3, 4, 5, 6, 7, 8] as const;

/**
 * The split of `depth` blocks into `k` modules whose slowest job is fastest. Refuses k > depth
 * (each module needs a block) with the field that sets it.
 */
export function balanceSplit(
  depth: number,
  k: number,
  cost: MtJobCost,
): { split: number[]; seconds: number[] } {
  if (!Number.isInteger(k) || k < 1) throw new Error(`modules must be a positive integer, got ${k}`);
  if (k > depth) {
    throw new Error(
      `modules (${k}) cannot exceed depth (${depth}): each module needs ≥ 1 block; set modules to at most ${depth}`,
    );
  }
  // costOf[i][n]: job i with n blocks (n = 1 … depth − k + 1).
  const maxBlocks = depth - k + 1;
  const costOf = Array.from({ length: k }, (_, i) =>
    Array.from({ length: maxBlocks + 1 }, (_, n) => (n === 0 ? Number.POSITIVE_INFINITY : cost(k, i, n))),
  );
  const slowest = minimaxSlowest(depth, k, costOf);
  // A small tolerance so that float noise in the costs does not exclude the minimax split itself.
  const limit = slowest * (1 + 1e-9);
  const split = evenestUnder(depth, k, costOf, limit);
  return { split, seconds: split.map((n, i) => costOf[i]![n]!) };
}

/** The smallest achievable slowest job: best[i][used] over modules 0…i using `used` blocks. */
function minimaxSlowest(depth: number, k: number, costOf: number[][]): number {
  let best = new Float64Array(depth + 1).fill(Number.POSITIVE_INFINITY);
  best[0] = 0;
  for (let i = 0; i < k; i++) {
    const next = new Float64Array(depth + 1).fill(Number.POSITIVE_INFINITY);
    for (let used = 0; used <= depth; used++) {
      if (!Number.isFinite(best[used]!)) continue;
      for (let n = 1; used + n <= depth && n < costOf[i]!.length; n++) {
        const value = Math.max(best[used]!, costOf[i]![n]!);
        if (value < next[used + n]!) next[used + n] = value;
      }
    }
    best = next;
  }
  return best[depth]!;
}

/** Among splits whose every job is ≤ limit: the one with the smallest sum of squared job times. */
function evenestUnder(depth: number, k: number, costOf: number[][], limit: number): number[] {
  const sumSq: Float64Array[] = [];
  const choice: Int32Array[] = [];
  let prev = new Float64Array(depth + 1).fill(Number.POSITIVE_INFINITY);
  prev[0] = 0;
  for (let i = 0; i < k; i++) {
    const next = new Float64Array(depth + 1).fill(Number.POSITIVE_INFINITY);
    const picked = new Int32Array(depth + 1);
    for (let used = 0; used <= depth; used++) {
      if (!Number.isFinite(prev[used]!)) continue;
      for (let n = 1; used + n <= depth && n < costOf[i]!.length; n++) {
        const c = costOf[i]![n]!;
        if (c > limit) continue;
        const value = prev[used]! + c * c;
        if (value < next[used + n]!) {
          next[used + n] = value;
          picked[used + n] = n;
        }
      }
    }
    sumSq.push(next);
    choice.push(picked);
    prev = next;
  }
  const split = new Array<number>(k);
  let used = depth;
  for (let i = k - 1; i >= 0; i--) {
    const n = choice[i]![used]!;
    split[i] = n;
    used -= n;
  }
  return split;
}

/**
 * Choose K as well: the candidate (≤ depth) whose predicted PT + slowest MT job is smallest —
 * the critical path when every module has its own worker, which is what the platform gives and
 * what incubation promises; FT does not depend on K. Ties go to the smaller K (fewer jobs).
 */
export function chooseModuleCount(
  depth: number,
  cost: MtJobCost,
  pretrainSeconds: (k: number) => number,
  candidates: readonly number[] = AUTO_MODULE_CANDIDATES,
): number {
  const usable = candidates.filter((k) => k <= depth);
  if (usable.length === 0) return 1;
  let bestK = usable[0]!;
  let bestTime = Number.POSITIVE_INFINITY;
  for (const k of usable) {
    const { seconds } = balanceSplit(depth, k, cost);
    const time = pretrainSeconds(k) + Math.max(...seconds);
    if (time < bestTime * (1 - 1e-9)) {
      bestTime = time;
      bestK = k;
    }
  }
  return bestK;
}

/**
 * The plan for `depth` blocks: K as given, or chosen (`k: "auto"`), balanced boundaries, the
 * predicted seconds per job, and the even split of the same K predicted by the same model.
 */
export function planSplit(
  depth: number,
  k: number | "auto",
  cost: MtJobCost,
  pretrainSeconds?: (k: number) => number,
): SplitPlan {
  const modules = k === "auto" ? chooseModuleCount(depth, cost, pretrainSeconds ?? (() => 0)) : k;
  const { split, seconds } = balanceSplit(depth, modules, cost);
  const even = resolveSplit(depth, modules);
  return {
    split,
    predictedSeconds: seconds,
    ...(pretrainSeconds ? { predictedPretrainSeconds: pretrainSeconds(modules) } : {}),
    even: { split: even, predictedSeconds: even.map((n, i) => cost(modules, i, n)) },
  };
}
