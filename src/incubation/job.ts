/**
 * One training job — meta pre-training, modular training of module i, fine-tuning, or the E2E
 * baseline — from a JSON job spec to artifacts and events. The same function runs inside the
 * `incubator incubate` child processes and inside platform workers; it knows nothing of either.
 *
 * A job checkpoints every `checkpointEvery` steps (parameters, optimizer state, step, RNG and
 * data-loader state), so a job restarted with `resumeFrom` continues exactly where it stopped.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { AugmentConfig } from "../data/augment/pipeline.ts";
import type { Dataset } from "../data/dataset.ts";
import { BatchLoader, type Batch as DataBatch } from "../data/loader.ts";
import { type DatasetSpec, openDataset } from "../data/registry.ts";
import { type DataCacheOptions, type DataStats, openTrainingData } from "../data/shard-cache.ts";
import {
  loadCheckpoint,
  loadWeights,
  restoreTrainer,
  saveCheckpoint,
  saveWeights,
} from "../engine/checkpoint/checkpoint.ts";
import { dropPathMasks, INPUT, vitClassifierSpec } from "../engine/models/classifier.ts";
import { type VitConfig, vitParamSpecs } from "../engine/models/vit.ts";
import { Rng } from "../engine/rng.ts";
import type { ExecutionProvider } from "../engine/runtime/providers.ts";
import { f32 } from "../engine/runtime/tensor.ts";
import type { TrainSpec } from "../engine/train/spec.ts";
import { type Batch, compileTrainer, Trainer } from "../engine/train/trainer.ts";
import { buildHybrid, type Hybrid, hybridInitialValues, type WidthAdapter } from "./hybrid.ts";
import { metaConfigFor, moduleParamSpecs } from "./modules.ts";
import { learningRate, type Phase, type PhaseSettings, phaseSettings, type Recipe } from "./recipe.ts";

export interface JobSpec {
  phase: Phase;
  /** The target architecture (pre-training derives the meta model from it). */
  target: VitConfig;
  /** Blocks per module (sums to target.depth). */
  split: number[];
  /** Modular training: the module this job trains. */
  moduleIndex?: number;
  /** Training data (with `shard` set for decentralised modular training). */
  dataset: DatasetSpec;
  /** Held-out data for the final evaluation. */
  evalDataset?: DatasetSpec;
  recipe: Recipe;
  seed: number;
  /** Where checkpoints and weights go. */
  outDir: string;
  /** Modular training: the meta model's weights (safetensors, timm names). */
  metaWeights?: string;
  /**
   * The meta model's architecture (PT trains it, MT reads it). Default: the target's with one
   * block per module. Another width is joined to the target's by width adapters (hybrid.ts).
   */
  meta?: VitConfig;
  /** Fine-tuning: the assembled target's weights. */
  initWeights?: string;
  /** Continue from this job's own checkpoint. */
  resumeFrom?: string;
  checkpointEvery?: number;
  threads?: number;
  provider?: ExecutionProvider;
  /** Evaluate on at most this many held-out images (default all). */
  evalLimit?: number;
  /** Open the training data through this machine's shard cache (and fetch it from `remote` if the source is not here). */
  dataCache?: DataCacheOptions;
}

export type JobEvent =
  | {
      type: "start";
      phase: Phase;
      moduleIndex?: number;
      totalSteps: number;
      startStep: number;
      trainImages: number;
      /** How the training data was obtained (cache hit, built here, downloaded) and the bytes it cost. */
      data: DataStats;
    }
  | {
      type: "progress";
      step: number;
      totalSteps: number;
      loss: number;
      lr: number;
      imagesPerSecond: number;
      etaSeconds: number;
    }
  | { type: "checkpoint"; step: number; path: string }
  | { type: "eval"; accuracy: number; loss: number; images: number }
  | { type: "done"; result: JobResult };

export interface JobResult {
  phase: Phase;
  moduleIndex?: number;
  steps: number;
  finalLoss: number | null;
  evalAccuracy: number | null;
  evalLoss: number | null;
  wallSeconds: number;
  /** Safetensors with what this job contributes (meta model, module i, or the whole target). */
  weightsPath: string;
  checkpointPath: string;
  /** Bytes the training reader read from the dataset's source (a shard reads only its own; 0 on a cache hit). */
  bytesRead: number;
  data: DataStats;
  /** Modular training: the width adapters module i trained with (dropped from its weights). */
  adapters?: WidthAdapter[];
}

export interface RunJobOptions {
  onEvent?: (event: JobEvent) => void;
  signal?: AbortSignal;
  /** Minimum milliseconds between progress events (default 500). */
  progressIntervalMs?: number;
}

/** Exit code of `incubator job` when it stopped on a cancellation (after saving a checkpoint). */
export const JOB_CANCELLED_EXIT_CODE = 3;
/** Exit code for a failure that a retry would only repeat (bad spec or data, loss became NaN). */
export const JOB_FAILED_PERMANENTLY_EXIT_CODE = 4;

/** A failure a retry would repeat: the platform fails the module instead of retrying it. */
export class JobFailedError extends Error {
  override name = "JobFailedError";
}

export class JobCancelledError extends Error {
  override name = "JobCancelledError";
}

const metaOf = (spec: JobSpec): VitConfig => spec.meta ?? metaConfigFor(spec.target, spec.split.length);

/** The model, trainable/frozen parameters and initial values a phase trains. */
function modelForPhase(spec: JobSpec, settings: PhaseSettings) {
  const { target, split } = spec;
  const k = split.length;
  const common = {
    batch: settings.batchSize,
    optimizer: settings.optimizer,
    labelSmoothing: settings.labelSmoothing,
    softTargets: settings.mix !== undefined,
    loss: settings.loss,
    ...(settings.clipGradNorm ? { clipGradNorm: settings.clipGradNorm } : {}),
    dropPathRate: settings.dropPath,
  };
  switch (spec.phase) {
    case "pretrain": {
      const meta = { ...metaOf(spec), dropPathRate: settings.dropPath };
      return {
        cfg: meta,
        trainSpec: vitClassifierSpec(meta, common),
        initial: undefined,
        depth: k,
        keep: vitParamSpecs(meta),
      };
    }
    case "modular": {
      const index = spec.moduleIndex;
      if (index === undefined || index < 0 || index >= k) {
        throw new JobFailedError(`moduleIndex must be 0…${k - 1} for modular training, got ${index}`);
      }
      if (!spec.metaWeights)
        throw new JobFailedError("metaWeights: modular training needs the meta model's weights");
      const meta = metaOf(spec);
      let hybrid: Hybrid;
      try {
        hybrid = buildHybrid(target, meta, split, index);
      } catch (error) {
        throw new JobFailedError(`meta: ${(error as Error).message}`);
      }
      const trainSpec = vitClassifierSpec(target, { ...common, params: hybrid.params, plan: hybrid.plan });
      return {
        cfg: target,
        trainSpec,
        initial: hybridInitialValues(hybrid, loadWeights(spec.metaWeights, { expect: vitParamSpecs(meta) })),
        depth: hybrid.depth,
        keep: moduleParamSpecs(target, split, index),
        adapters: hybrid.adapters,
      };
    }
    case "finetune": {
      if (!spec.initWeights)
        throw new JobFailedError("initWeights: fine-tuning needs the assembled model's weights");
      return {
        cfg: target,
        trainSpec: vitClassifierSpec(target, common),
        initial: loadWeights(spec.initWeights, { expect: vitParamSpecs(target) }),
        depth: target.depth,
        keep: vitParamSpecs(target),
      };
    }
    case "e2e":
      return {
        cfg: target,
        trainSpec: vitClassifierSpec(target, common),
        initial: undefined,
        depth: target.depth,
        keep: vitParamSpecs(target),
      };
  }
}

function checkDataFits(ds: Dataset, cfg: VitConfig, what: string): void {
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

function toEngineBatch(batch: DataBatch, cfg: VitConfig, size: number, soft: boolean): Batch {
  const out: Batch = {
    [INPUT.images]: f32([size, cfg.channels, cfg.imageSize, cfg.imageSize], batch.images),
  };
  if (soft) out[INPUT.targets] = f32([size, cfg.numClasses], batch.targets!);
  else out[INPUT.labels] = { dtype: "int64", shape: [size], data: batch.labels as BigInt64Array };
  return out;
}

export async function runJob(spec: JobSpec, options: RunJobOptions = {}): Promise<JobResult> {
  const started = performance.now();
  const emit = options.onEvent ?? (() => {});
  const settings = phaseSettings(spec.recipe, spec.phase);
  const model = modelForPhase(spec, settings);
  const { cfg } = model;
  mkdirSync(spec.outDir, { recursive: true });
  const tag = spec.phase === "modular" ? `module-${spec.moduleIndex}` : spec.phase;
  const checkpointPath = join(spec.outDir, `${tag}.checkpoint.safetensors`);
  const weightsPath = join(spec.outDir, `${tag}.safetensors`);

  const { dataset: train, data } = await openTrainingData(spec.dataset, spec.dataCache);
  checkDataFits(train, cfg, "the training dataset");
  const augment: AugmentConfig = { ...settings.augment, outputSize: cfg.imageSize };
  const rng = new Rng(spec.seed).fork(`job/${tag}`);
  const loader = new BatchLoader(train, {
    batchSize: settings.batchSize,
    seed: rng.fork("data").nextU32(),
    augment,
    labelType: "int64",
    ...(settings.mix ? { mix: settings.mix } : {}),
  });
  if (train.length < settings.batchSize) {
    throw new Error(
      `the training set has ${train.length} images, fewer than one batch (${settings.batchSize})`,
    );
  }
  let dropRng = rng.fork("drop-path");
  const trainer = await Trainer.create(compileTrainer(model.trainSpec as TrainSpec, { eval: true }), {
    seed: rng.fork("init").nextU32(),
    ...(model.initial ? { initial: model.initial } : {}),
    ...(spec.threads ? { intraOpNumThreads: spec.threads } : {}),
    ...(spec.provider ? { provider: spec.provider } : {}),
  });

  let startStep = 0;
  if (spec.resumeFrom) {
    const checkpoint = loadCheckpoint(spec.resumeFrom);
    restoreTrainer(trainer, checkpoint);
    startStep = checkpoint.step;
    const extra = checkpoint.extra as
      | { loader?: unknown; dropRng?: [number, number, number, number] }
      | undefined;
    if (extra?.loader) loader.restore(extra.loader as Parameters<BatchLoader["restore"]>[0]);
    if (extra?.dropRng) dropRng = new Rng(extra.dropRng);
  }
  const total = settings.steps;
  emit({
    type: "start",
    phase: spec.phase,
    ...(spec.moduleIndex !== undefined ? { moduleIndex: spec.moduleIndex } : {}),
    totalSteps: total,
    startStep,
    trainImages: train.length,
    data,
  });

  const save = (step: number) => {
    saveCheckpoint(checkpointPath, {
      trainer,
      extra: {
        loader: loader.state(),
        dropRng: dropRng.state(),
        phase: spec.phase,
        moduleIndex: spec.moduleIndex ?? null,
      },
    });
    emit({ type: "checkpoint", step, path: checkpointPath });
  };

  let lastLoss: number | null = null;
  let lastProgress = 0;
  const interval = options.progressIntervalMs ?? 500;
  const timing = { since: performance.now(), steps: 0 };
  try {
    for (let step = startStep; step < total; step++) {
      if (options.signal?.aborted) {
        save(step);
        throw new JobCancelledError(`cancelled at step ${step} of ${total}; checkpoint saved`);
      }
      const batch = toEngineBatch(loader.next(), cfg, settings.batchSize, settings.mix !== undefined);
      if (settings.dropPath > 0) {
        batch[INPUT.dropMask] = f32(
          [model.depth, settings.batchSize],
          dropPathMasks(dropRng, settings.dropPath, model.depth, settings.batchSize),
        );
      }
      const lr = learningRate(settings, step);
      const result = await trainer.trainStep(batch, lr);
      if (!Number.isFinite(result.loss)) {
        throw new JobFailedError(
          `loss became ${result.loss} at step ${step + 1} of ${total} (lr ${lr.toExponential(2)}); lower the learning rate or enable clipping`,
        );
      }
      lastLoss = result.loss;
      timing.steps++;
      const now = performance.now();
      if (now - lastProgress >= interval || step === total - 1) {
        const perStep = (now - timing.since) / timing.steps / 1000;
        emit({
          type: "progress",
          step: step + 1,
          totalSteps: total,
          loss: result.loss,
          lr,
          imagesPerSecond: settings.batchSize / perStep,
          etaSeconds: perStep * (total - step - 1),
        });
        lastProgress = now;
      }
      if (spec.checkpointEvery && (step + 1) % spec.checkpointEvery === 0 && step + 1 < total) save(step + 1);
    }
    save(total);
    const all = trainer.parameters();
    saveWeights(
      weightsPath,
      { parameters: new Map(model.keep.map((s) => [s.name, all.get(s.name)!] as const)), shapes: model.keep },
      {
        metadata: {
          phase: spec.phase,
          ...(spec.moduleIndex !== undefined ? { moduleIndex: String(spec.moduleIndex) } : {}),
        },
      },
    );

    let evalAccuracy: number | null = null;
    let evalLoss: number | null = null;
    if (spec.evalDataset && spec.phase !== "modular") {
      const ev = await evaluate(
        trainer,
        spec.evalDataset,
        cfg,
        settings.batchSize,
        spec.evalLimit,
        spec.dataCache,
      );
      evalAccuracy = ev.accuracy;
      evalLoss = ev.loss;
      emit({ type: "eval", ...ev });
    }
    const result: JobResult = {
      phase: spec.phase,
      ...(spec.moduleIndex !== undefined ? { moduleIndex: spec.moduleIndex } : {}),
      steps: total,
      finalLoss: lastLoss,
      evalAccuracy,
      evalLoss,
      wallSeconds: (performance.now() - started) / 1000,
      weightsPath,
      checkpointPath,
      bytesRead: train.stats.bytesRead,
      data: { ...data, bytesRead: train.stats.bytesRead }, // image folders read lazily, during training
      ...("adapters" in model && model.adapters?.length ? { adapters: model.adapters } : {}),
    };
    emit({ type: "done", result });
    return result;
  } finally {
    await trainer.release();
  }
}

/**
 * Accuracy and mean cross-entropy on held-out data with the eval graph. The graph has a fixed
 * batch; the last partial batch is padded and only its real rows are counted.
 */
export async function evaluate(
  trainer: Trainer,
  datasetSpec: DatasetSpec,
  cfg: VitConfig,
  batchSize: number,
  limit?: number,
  /** Through the worker's cache, like the training data: a site without the files downloads it. */
  cache?: DataCacheOptions,
): Promise<{ accuracy: number; loss: number; images: number }> {
  const ds = cache ? (await openTrainingData(datasetSpec, cache)).dataset : await openDataset(datasetSpec);
  checkDataFits(ds, cfg, "the evaluation dataset");
  const n = Math.min(ds.length, limit ?? ds.length);
  const indices = Int32Array.from({ length: n }, (_, i) => i);
  const loader = new BatchLoader(ds, {
    batchSize,
    seed: 0,
    indices,
    shuffle: false,
    dropLast: false,
    augment: { outputSize: cfg.imageSize },
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
