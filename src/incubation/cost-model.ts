/**
 * What an MT job costs on this machine, measured: the split planner's input.
 *
 * Why pieces and not "time every candidate hybrid": the planner compares every split of D blocks
 * into K modules for K = 2…8, i.e. every (K, i, blocks) — hundreds of distinct hybrids, each a
 * fresh graph to compile. A job's step time is, to a good approximation, a sum of what it runs:
 *
 *   step(K, i, n) = base + n·block + i·frozenForward + (K−1−i)·frozenBackward
 *                   + [i = 0]·embed + [i = K−1]·head
 *
 *   base            the loss, the frozen embedding and head (forward + backward-through), ORT's
 *                   per-run overhead, feeding the batch and the flat buffers
 *   block           one trainable target block: forward, backward, its optimizer update
 *   frozenForward   one frozen meta block before slot i: forward only (nothing before it trains)
 *   frozenBackward  one frozen meta block after slot i: forward + backward to its input (the loss
 *                   gradient must reach module i), no weight gradient, no optimizer state
 *   embed, head     what owning the target's embedding / norm + head adds over the frozen ones
 *
 * so a handful of real hybrids (`buildHybrid`, the very network an MT job trains, with the run's
 * recipe, batch size and thread count) determine it by least squares, and every candidate is then
 * predicted for free. The same features fit the setup time (compiling the train and eval graphs
 * and opening their sessions), which a job pays once. The pre-training cost (the K-block meta
 * model, all trainable) is its own line, from two plain meta models. Measurements are cached per
 * process by everything they depend on.
 *
 * Not modelled: data loading and checkpoint writes (the same for every module, so they do not
 * move the boundaries), and the last block computing only the class token (a few percent).
 */
import { vitClassifierSpec } from "../engine/models/classifier.ts";
import type { VitConfig } from "../engine/models/vit.ts";
import { Rng } from "../engine/rng.ts";
import type { HostTensor } from "../engine/runtime/tensor.ts";
import type { InputSpec, TrainSpec } from "../engine/train/spec.ts";
import { type Batch, compileTrainer, Trainer } from "../engine/train/trainer.ts";
import { buildHybrid, hybridClassifierOptions } from "./hybrid.ts";
import { classifierOptions } from "./job-steps.ts";
import { type MetaOverrides, metaConfigFor } from "./modules.ts";
import { phaseSettings, type Recipe } from "./recipe.ts";
import { type MtJobCost, planSplit, type SplitPlan } from "./split-planner.ts";

/** The pieces of one step (seconds), see the file comment. */
export interface StepPieces {
  base: number;
  block: number;
  frozenForward: number;
  frozenBackward: number;
  embed: number;
  head: number;
}

const PIECES = ["base", "block", "frozenForward", "frozenBackward", "embed", "head"] as const;

export interface CostModel {
  /** Seconds per MT training step. */
  step: StepPieces;
  /** Seconds an MT job spends before its first step (compile + sessions). */
  setup: StepPieces;
  /** PT seconds per step and setup as a line in K: a + b·K. */
  pretrainStep: { perModel: number; perBlock: number };
  pretrainSetup: { perModel: number; perBlock: number };
  /** Steps of each phase the prediction is for (the recipe's). */
  steps: { pretrain: number; modular: number };
  /** Wall seconds the measurement took. */
  measuredInSeconds: number;
}

/** The feature vector of MT job i of K with n blocks, in PIECES order. */
export function mtFeatures(k: number, index: number, blocks: number): number[] {
  return [1, blocks, index, k - 1 - index, index === 0 ? 1 : 0, index === k - 1 ? 1 : 0];
}

const dot = (pieces: StepPieces, x: number[]) =>
  PIECES.reduce((sum, name, j) => sum + pieces[name] * x[j]!, 0);

/** Predicted wall seconds of MT job i (setup + steps). */
export function mtJobSeconds(model: CostModel): MtJobCost {
  return (k, index, blocks) => {
    const x = mtFeatures(k, index, blocks);
    return dot(model.setup, x) + model.steps.modular * dot(model.step, x);
  };
}

/** Predicted wall seconds of PT for a K-block meta model. */
export function pretrainSeconds(model: CostModel): (k: number) => number {
  const line = (l: { perModel: number; perBlock: number }, k: number) => l.perModel + l.perBlock * k;
  return (k) => line(model.pretrainSetup, k) + model.steps.pretrain * line(model.pretrainStep, k);
}

/**
 * The hybrids measured: (K, split, index) chosen so that the six pieces are determined, and the
 * embedding and head (one flag each) are each seen twice, so one noisy timing is not all of them.
 */
const MT_PROBES: { split: number[]; index: number }[] = [
  { split: [1, 1], index: 0 },
  { split: [1, 1], index: 1 },
  { split: [1, 1, 1], index: 0 },
  { split: [1, 1, 1], index: 2 },
  { split: [1, 1, 1], index: 1 },
  { split: [1, 3, 1], index: 1 },
  { split: [1, 1, 1, 1, 1], index: 1 },
  { split: [1, 1, 1, 1, 1], index: 3 },
];
const PT_PROBE_DEPTHS = [2, 4];

export interface MeasureOptions {
  target: VitConfig;
  metaOverrides?: MetaOverrides;
  recipe: Recipe;
  /** ORT intra-op threads each MT job will use (undefined: ORT's default, as the job would). */
  threads?: number;
  /** Timed steps per probe after `warmSteps` untimed ones (median taken). */
  timedSteps?: number;
  warmSteps?: number;
}

const cache = new Map<string, Promise<CostModel>>();

/** The cost model for this target, recipe and thread count, measured once per process. */
export function measureCostModel(opts: MeasureOptions): Promise<CostModel> {
  const { target, metaOverrides = {}, recipe, threads, timedSteps = 5, warmSteps = 2 } = opts;
  const key = JSON.stringify([target, metaOverrides, recipe, threads, timedSteps, warmSteps]);
  let measured = cache.get(key);
  if (!measured) {
    measured = measure(target, metaOverrides, recipe, threads, timedSteps, warmSteps);
    cache.set(key, measured);
    measured.catch(() => cache.delete(key));
  }
  return measured;
}

async function measure(
  target: VitConfig,
  metaOverrides: MetaOverrides,
  recipe: Recipe,
  threads: number | undefined,
  timedSteps: number,
  warmSteps: number,
): Promise<CostModel> {
  const started = performance.now();
  const time = (spec: TrainSpec) => timeProbe(spec, target.numClasses, threads, timedSteps, warmSteps);
  const ptOptions = classifierOptions(phaseSettings(recipe, "pretrain"));
  // The process's first compile and session pay one-time costs (code loading, JIT, ORT's
  // start-up); taken by a throwaway probe, so that they are not charged to a piece.
  await time(vitClassifierSpec(metaConfigFor(target, 1, metaOverrides), ptOptions));
  const mtOptions = classifierOptions(phaseSettings(recipe, "modular"));
  const rows: number[][] = [];
  const stepTimes: number[] = [];
  const setupTimes: number[] = [];
  for (const probe of MT_PROBES) {
    const k = probe.split.length;
    const probeTarget = { ...target, depth: probe.split.reduce((a, b) => a + b, 0) };
    const meta = metaConfigFor(probeTarget, k, metaOverrides);
    const hybrid = buildHybrid(probeTarget, meta, probe.split, probe.index);
    const spec = vitClassifierSpec(probeTarget, { ...mtOptions, ...hybridClassifierOptions(hybrid) });
    const t = await time(spec);
    rows.push(mtFeatures(k, probe.index, probe.split[probe.index]!));
    stepTimes.push(t.step);
    setupTimes.push(t.setup);
  }
  const ptStep: number[] = [];
  const ptSetup: number[] = [];
  for (const depth of PT_PROBE_DEPTHS) {
    const meta = metaConfigFor(target, depth, metaOverrides);
    const t = await time(vitClassifierSpec(meta, ptOptions));
    ptStep.push(t.step);
    ptSetup.push(t.setup);
  }
  return {
    step: piecesFrom(nonNegativeLeastSquares(rows, stepTimes)),
    setup: piecesFrom(nonNegativeLeastSquares(rows, setupTimes)),
    pretrainStep: lineThrough(PT_PROBE_DEPTHS, ptStep),
    pretrainSetup: lineThrough(PT_PROBE_DEPTHS, ptSetup),
    steps: { pretrain: recipe.steps.pretrain, modular: recipe.steps.modular },
    measuredInSeconds: (performance.now() - started) / 1000,
  };
}

function piecesFrom(x: number[]): StepPieces {
  return Object.fromEntries(PIECES.map((name, j) => [name, x[j]!])) as unknown as StepPieces;
}

/**
 * Least squares with every piece ≥ 0: noise on a loaded machine can make a small piece come out
 * negative, and no piece of work takes negative time. The most negative piece is fixed at 0 and
 * the rest refitted without it, until none is negative (an active-set NNLS; six unknowns).
 */
export function nonNegativeLeastSquares(rows: number[][], y: number[]): number[] {
  const n = rows[0]!.length;
  const free = Array.from({ length: n }, (_, j) => j);
  for (;;) {
    const fit = leastSquares(
      rows.map((r) => free.map((j) => r[j]!)),
      y,
    );
    const worst = fit.reduce((w, v, at) => (v < fit[w]! ? at : w), 0);
    if (fit[worst]! >= 0 || free.length === 1) {
      const x = new Array<number>(n).fill(0);
      free.forEach((j, at) => {
        x[j] = Math.max(0, fit[at]!);
      });
      return x;
    }
    free.splice(worst, 1);
  }
}

function lineThrough(xs: number[], ys: number[]): { perModel: number; perBlock: number } {
  const perBlock = Math.max(0, (ys[1]! - ys[0]!) / (xs[1]! - xs[0]!));
  return { perModel: Math.max(0, ys[0]! - perBlock * xs[0]!), perBlock };
}

/** Least squares by the normal equations (at most 6×6; the probes make it well conditioned). */
export function leastSquares(rows: number[][], y: number[]): number[] {
  const n = rows[0]!.length;
  const a = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n + 1 }, (_, j) =>
      j < n
        ? rows.reduce((s, r) => s + r[i]! * r[j]!, 0)
        : rows.reduce((s, r, row) => s + r[i]! * y[row]!, 0),
    ),
  );
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    const p = a[col]![col]!;
    if (Math.abs(p) < 1e-12) throw new Error("cost model: the probes do not determine every piece");
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = a[r]![col]! / p;
      for (let j = col; j <= n; j++) a[r]![j]! -= f * a[col]![j]!;
    }
  }
  return a.map((row, i) => row[n]! / row[i]!);
}

/** Random inputs of the right shapes: timing does not depend on the values. */
function probeBatch(inputs: InputSpec[], numClasses: number): Batch {
  const rng = new Rng(7);
  const batch: Batch = {};
  for (const input of inputs) {
    const shape = input.shape as number[];
    const size = shape.reduce((a, b) => a * b, 1);
    let tensor: HostTensor;
    if (input.dtype === "int64") {
      tensor = {
        dtype: "int64",
        shape,
        data: BigInt64Array.from({ length: size }, () => BigInt(rng.int(numClasses))),
      };
    } else {
      tensor = { dtype: "float32", shape, data: Float32Array.from({ length: size }, () => rng.uniform()) };
    }
    batch[input.name] = tensor;
  }
  return batch;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Setup (compile the train and eval graphs, open their sessions — as a job does) and the median step. */
async function timeProbe(
  spec: TrainSpec,
  numClasses: number,
  threads: number | undefined,
  timedSteps: number,
  warmSteps: number,
): Promise<{ step: number; setup: number }> {
  const started = performance.now();
  const trainer = await Trainer.create(compileTrainer(spec, { eval: true }), {
    seed: 0,
    ...(threads ? { intraOpNumThreads: threads } : {}),
  });
  const setup = (performance.now() - started) / 1000;
  try {
    const batch = probeBatch(trainer.artifacts.inputs, numClasses);
    for (let i = 0; i < warmSteps; i++) await trainer.trainStep(batch, 1e-4);
    const times: number[] = [];
    for (let i = 0; i < timedSteps; i++) {
      const t0 = performance.now();
      await trainer.trainStep(batch, 1e-4);
      times.push((performance.now() - t0) / 1000);
    }
    return { step: median(times), setup };
  } finally {
    await trainer.release();
  }
}

/** Measure (or reuse the measurement) and plan: what `modules: "auto"` resolves to. */
export async function planFromMeasurement(
  opts: MeasureOptions & { modules: number | "auto" },
): Promise<{ plan: SplitPlan; model: CostModel }> {
  const model = await measureCostModel(opts);
  return {
    plan: planSplit(opts.target.depth, opts.modules, mtJobSeconds(model), pretrainSeconds(model)),
    model,
  };
}
