/**
 * Held-out evaluation of a job's model: the final score (`evaluate`) and the accuracy curve —
 * a fixed subset of the held-out data scored every `evalEvery` steps (`openCurve`), so that a
 * run's accuracy can be drawn against time (accuracy-curve.ts). Scoring reads the eval graph
 * only: it never touches the training state, so a job with a curve trains exactly as one without.
 */
import type { Dataset } from "../data/dataset.ts";
import { BatchLoader } from "../data/loader.ts";
import type { Normalization } from "../data/normalization.ts";
import { type DatasetSpec, openDataset } from "../data/registry.ts";
import { type DataCacheOptions, openTrainingData } from "../data/shard-cache.ts";
import { INPUT } from "../engine/models/classifier.ts";
import type { VitConfig } from "../engine/models/vit.ts";
import { f32 } from "../engine/runtime/tensor.ts";
import type { Trainer } from "../engine/train/trainer.ts";
import { type JobEvent, JobFailedError, type JobSpec } from "./job-spec.ts";
import type { Recipe } from "./recipe.ts";

/** A bad channel or class count fails the job with the setting that fixes it, not with a shape error deep in ORT. */
export function checkDataFits(ds: Dataset, cfg: VitConfig, what: string): void {
  if (ds.channels !== cfg.channels) {
    throw new JobFailedError(
      `${what} has ${ds.channels} channel(s) but the model expects ${cfg.channels}; set channels: ${ds.channels}`,
    );
  }
  if (ds.numClasses > cfg.numClasses) {
    throw new JobFailedError(
      `${what} has ${ds.numClasses} classes but the model's head has ${cfg.numClasses}; set numClasses: ${ds.numClasses}`,
    );
  }
}

/** Accuracy and mean cross-entropy of a model on held-out images. */
export interface Evaluation {
  accuracy: number;
  loss: number;
  images: number;
}

/** Held-out data, opened once: through the worker's cache like the training data (a site without the files downloads it). */
export async function openEvalSet(
  spec: DatasetSpec,
  cfg: VitConfig,
  cache?: DataCacheOptions,
): Promise<Dataset> {
  const ds = cache ? (await openTrainingData(spec, cache)).dataset : await openDataset(spec);
  checkDataFits(ds, cfg, "the evaluation dataset");
  return ds;
}

/** Accuracy and mean cross-entropy on a held-out dataset spec: `openEvalSet`, then `score`. */
export async function evaluate(
  trainer: Trainer,
  datasetSpec: DatasetSpec,
  cfg: VitConfig,
  batchSize: number,
  options: ScoreOptions & { cache?: DataCacheOptions },
): Promise<Evaluation> {
  return score(trainer, await openEvalSet(datasetSpec, cfg, options.cache), cfg, batchSize, options);
}

export interface ScoreOptions {
  /** The normalisation the model was trained with (`trainingNormalization`). */
  normalize: Normalization;
  /** Only the first `limit` images: a fixed subset, the same at every call. */
  limit?: number;
}

/**
 * Accuracy and mean cross-entropy on held-out data with the eval graph. The graph has a fixed
 * batch; the last partial batch is padded and only its real rows are counted.
 */
export async function score(
  trainer: Trainer,
  ds: Dataset,
  cfg: VitConfig,
  batchSize: number,
  options: ScoreOptions,
): Promise<Evaluation> {
  const { limit } = options;
  const n = Math.min(ds.length, limit ?? ds.length);
  const indices = Int32Array.from({ length: n }, (_, i) => i);
  const loader = new BatchLoader(ds, {
    batchSize,
    seed: 0,
    indices,
    shuffle: false,
    dropLast: false,
    augment: { outputSize: cfg.imageSize, normalize: options.normalize },
    labelType: "int64",
  });
  let correct = 0;
  let lossSum = 0;
  let seen = 0;
  const per = cfg.channels * cfg.imageSize * cfg.imageSize;
  for (const batch of loader.epochBatches()) {
    const real = batch.indices.length;
    const images = new Float32Array(batchSize * per);
    images.set(batch.images.subarray(0, real * per));
    const labels = new BigInt64Array(batchSize);
    labels.set((batch.labels as BigInt64Array).subarray(0, real));
    const out = await trainer.evaluate({
      [INPUT.images]: f32([batchSize, cfg.channels, cfg.imageSize, cfg.imageSize], images),
      [INPUT.labels]: { dtype: "int64", shape: [batchSize], data: labels },
    });
    const logits = out.outputs.logits!.data as Float32Array;
    const k = cfg.numClasses;
    for (let r = 0; r < real; r++) {
      const row = logits.subarray(r * k, (r + 1) * k);
      let best = 0;
      let max = -Infinity;
      for (let c = 0; c < k; c++) if (row[c]! > max) [max, best] = [row[c]!, c];
      const y = Number(labels[r]);
      if (best === y) correct++;
      let sum = 0;
      for (let c = 0; c < k; c++) sum += Math.exp(row[c]! - max);
      lossSum += Math.log(sum) + max - row[y]!;
    }
    seen += real;
  }
  return { accuracy: correct / seen, loss: lossSum / seen, images: seen };
}

/** Where a job's curve is scored, how often, and where its points go. */
export interface CurveSettings {
  spec: JobSpec;
  cfg: VitConfig;
  batchSize: number;
  normalize: Normalization;
  emit: (event: JobEvent) => void;
  /** `performance.now()` when the job started: a point's `seconds` count from it. */
  started: number;
}

/** Records a job's accuracy curve: `due(step)` says whether `record` should score after `step` steps. */
export interface CurveRecorder {
  due(step: number, totalSteps: number): boolean;
  record(trainer: Trainer, step: number): Promise<void>;
}

/** Off when the recipe's `evalEvery` is 0 or the spec has no held-out data. */
export function curveEnabled(spec: Pick<JobSpec, "evalDataset"> & { recipe: Pick<Recipe, "evalEvery"> }) {
  return spec.recipe.evalEvery > 0 && spec.evalDataset !== undefined;
}

/**
 * The job's curve recorder, or null when the curve is off. The held-out subset (the first
 * `evalSubset` images of `evalDataset`) is opened once here, not at every point.
 */
export async function openCurve(s: CurveSettings): Promise<CurveRecorder | null> {
  const { spec, cfg, batchSize, normalize, emit, started } = s;
  if (!curveEnabled(spec)) return null;
  const ds = await openEvalSet(spec.evalDataset!, cfg, spec.dataCache);
  const { evalEvery, evalSubset } = spec.recipe;
  return {
    due: (step, totalSteps) => step === 0 || step % evalEvery === 0 || step === totalSteps,
    async record(trainer, step) {
      const ev = await score(trainer, ds, cfg, batchSize, { normalize, limit: evalSubset });
      emit({ type: "evalPoint", step, seconds: (performance.now() - started) / 1000, ...ev });
    },
  };
}
