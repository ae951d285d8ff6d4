/**
 * The steps of one training job, in the order `runJob` (job.ts) takes them: check what the spec
 * asks for, assemble (FT), build the model, open the data, start the trainer, resume, train,
 * save the weights, evaluate, export, and the result. Each step is small so that the job reads as
 * its list of steps, and so that the local pipeline and the platform share every one of them.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { BatchLoader, type Batch as DataBatch } from "../data/loader.ts";
import { type Normalization, normalizationFor } from "../data/normalization.ts";
import { openTrainingData } from "../data/shard-cache.ts";
import {
  loadCheckpoint,
  loadWeights,
  restoreTrainer,
  saveCheckpoint,
  saveWeights,
} from "../engine/checkpoint/checkpoint.ts";
import { exportVitOnnx } from "../engine/export/onnx-export.ts";
import { dropMaskShape, dropPathMasks, INPUT, vitClassifierSpec } from "../engine/models/classifier.ts";
import { type VitConfig, vitParamSpecs } from "../engine/models/vit.ts";
import { Rng } from "../engine/rng.ts";
import { f32 } from "../engine/runtime/tensor.ts";
import { graphCacheFromEnv } from "../engine/train/graph-cache.ts";
import type { TrainSpec } from "../engine/train/spec.ts";
import { type Batch, compileTrainer, Trainer } from "../engine/train/trainer.ts";
import { assembleTarget } from "./assemble.ts";
import { buildHybrid, type Hybrid, hybridInitialValues } from "./hybrid.ts";
import { type CurveRecorder, checkDataFits, type Evaluation, evaluate } from "./job-eval.ts";
import {
  type AssembledModel,
  JobCancelledError,
  type JobEvent,
  JobFailedError,
  type JobResult,
  type JobSpec,
  type ModuleWeights,
  type RunJobOptions,
} from "./job-spec.ts";
import { metaConfigFor, moduleParamSpecs } from "./modules.ts";
import { learningRate, type PhaseSettings } from "./recipe.ts";

/** What every step after the model is built reads. */
export interface JobContext {
  spec: JobSpec;
  settings: PhaseSettings;
  model: PhaseModel;
  files: JobFiles;
  emit: (event: JobEvent) => void;
}

/**
 * Refuse, before any training, outputs the phase cannot give: only FT starts from an assembled
 * model, and an MT job's weights are one module, not a model to export.
 */
export function checkOutputs(spec: JobSpec): void {
  if (spec.assembleFrom && spec.phase !== "finetune")
    throw new JobFailedError(
      `assembleFrom: only fine-tuning starts from an assembled model, not ${spec.phase}`,
    );
  if (spec.assembleFrom && spec.initWeights)
    throw new JobFailedError("assembleFrom and initWeights both give the initial weights; give one");
  if (spec.exportOnnx && spec.phase === "modular")
    throw new JobFailedError("exportOnnx: a modular job's weights are one module, not a whole model");
}

export type JobFiles = ReturnType<typeof jobFiles>;

/** The files a job writes, named by phase and module so jobs sharing an outDir (the local pipeline) do not collide. */
export function jobFiles(spec: JobSpec) {
  mkdirSync(spec.outDir, { recursive: true });
  const tag = spec.phase === "modular" ? `module-${spec.moduleIndex}` : spec.phase;
  return {
    tag,
    checkpoint: join(spec.outDir, `${tag}.checkpoint.safetensors`),
    weights: join(spec.outDir, `${tag}.safetensors`),
    assembled: join(spec.outDir, "assembled.safetensors"),
    onnx: join(spec.outDir, "model.onnx"),
  };
}

/**
 * FT's first step when given the modules' weights: the target with stage i from module i
 * (assemble.ts), written next to the job's other outputs so it can be uploaded and inspected.
 */
export function assembleModules(spec: JobSpec, modules: ModuleWeights[], path: string): AssembledModel {
  const started = performance.now();
  const sources = modules.map((m) => ({ moduleIndex: m.moduleIndex, parameters: loadWeights(m.weights) }));
  let parameters: Map<string, Float32Array>;
  try {
    parameters = assembleTarget(spec.target, spec.split, sources).parameters;
  } catch (error) {
    throw new JobFailedError(`assembleFrom: ${(error as Error).message}`);
  }
  saveWeights(path, { parameters, shapes: vitParamSpecs(spec.target) }, { metadata: { phase: "assemble" } });
  return {
    path,
    modules: modules.map((m) => m.moduleIndex).sort((a, b) => a - b),
    wallSeconds: (performance.now() - started) / 1000,
  };
}

const metaOf = (spec: JobSpec): VitConfig => spec.meta ?? metaConfigFor(spec.target, spec.split.length);

/** The classifier options a phase's settings give (merge with the model's params and plan); the cost model builds its probes with them too. */
export function classifierOptions(settings: PhaseSettings) {
  return {
    batch: settings.batchSize,
    optimizer: settings.optimizer,
    labelSmoothing: settings.labelSmoothing,
    softTargets: settings.mix !== undefined,
    loss: settings.loss,
    ...(settings.clipGradNorm ? { clipGradNorm: settings.clipGradNorm } : {}),
    dropPathRate: settings.dropPath,
    recomputeActivations: settings.recomputeActivations,
  };
}

export type PhaseModel = ReturnType<typeof buildModel>;

/** The network a phase trains, its initial values, its drop-path depth and the parameters its weights file keeps. */
export function buildModel(spec: JobSpec, settings: PhaseSettings) {
  const { target, split } = spec;
  const k = split.length;
  const common = classifierOptions(settings);
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
        throw new JobFailedError(
          "initWeights: fine-tuning needs the assembled model's weights (initWeights or assembleFrom)",
        );
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

/**
 * What the job normalises with, in training and evaluation alike: the recipe's `augment.normalize`,
 * else the training data format's constants (data/normalization.ts).
 */
export function trainingNormalization(spec: JobSpec, settings: PhaseSettings): Normalization {
  return normalizationFor(spec.dataset, settings.augment.normalize);
}

/** The job's random streams, each forked by name from the seed, so one consumer's draws never shift another's. */
const jobRng = (job: JobContext) => new Rng(job.spec.seed).fork(`job/${job.files.tag}`);

export type JobData = Awaited<ReturnType<typeof openData>>;

/**
 * The training data (through the machine's shard cache when the spec has one) and its seeded
 * loader, whose position a checkpoint saves.
 */
export async function openData(job: JobContext) {
  const { spec, settings, model } = job;
  const { dataset: train, data: stats } = await openTrainingData(spec.dataset, spec.dataCache);
  checkDataFits(train, model.cfg, "the training dataset");
  const loader = new BatchLoader(train, {
    batchSize: settings.batchSize,
    seed: jobRng(job).fork("data").nextU32(),
    augment: {
      ...settings.augment,
      outputSize: model.cfg.imageSize,
      normalize: trainingNormalization(spec, settings),
    },
    labelType: "int64",
    ...(settings.mix ? { mix: settings.mix } : {}),
  });
  if (train.length < settings.batchSize) {
    throw new Error(
      `the training set has ${train.length} images, fewer than one batch (${settings.batchSize})`,
    );
  }
  return { train, stats, loader };
}

/** What the training loop advances and a checkpoint captures. */
export interface TrainingState {
  trainer: Trainer;
  loader: BatchLoader;
  /** Drop-path masks are drawn from this stream, so it is saved and restored with the step. */
  dropRng: Rng;
  /** The next step to train (0, or the checkpoint's step after a resume). */
  step: number;
}

/** The compiled train (and eval) graphs in an ORT session, initialised from the model's initial values or the seed. */
export async function startTrainer(job: JobContext, loader: BatchLoader): Promise<TrainingState> {
  const { spec, model } = job;
  const rng = jobRng(job);
  const cache = graphCacheFromEnv(spec.graphCacheDir);
  const artifacts = compileTrainer(model.trainSpec as TrainSpec, { eval: true, ...(cache ? { cache } : {}) });
  const trainer = await Trainer.create(artifacts, {
    seed: rng.fork("init").nextU32(),
    ...(model.initial ? { initial: model.initial } : {}),
    ...(spec.threads ? { intraOpNumThreads: spec.threads } : {}),
    ...(spec.provider ? { provider: spec.provider } : {}),
  });
  return { trainer, loader, dropRng: rng.fork("drop-path"), step: 0 };
}

/**
 * A retried job continues from its checkpoint: parameters, optimizer state and step, and also
 * the loader's position and the drop-path stream, so it draws exactly the batches and masks an
 * uninterrupted job would have.
 */
export function resumeFromCheckpoint(state: TrainingState, path: string | undefined): void {
  if (!path) return;
  const checkpoint = loadCheckpoint(path);
  restoreTrainer(state.trainer, checkpoint);
  state.step = checkpoint.step;
  const extra = checkpoint.extra as
    | { loader?: unknown; dropRng?: [number, number, number, number] }
    | undefined;
  if (extra?.loader) state.loader.restore(extra.loader as Parameters<BatchLoader["restore"]>[0]);
  if (extra?.dropRng) state.dropRng = new Rng(extra.dropRng);
}

/** Everything `resumeFromCheckpoint` reads, in the job's one checkpoint file (each save replaces it). */
function saveTrainingCheckpoint(job: JobContext, state: TrainingState, step: number): void {
  saveCheckpoint(job.files.checkpoint, {
    trainer: state.trainer,
    extra: {
      loader: state.loader.state(),
      dropRng: state.dropRng.state(),
      phase: job.spec.phase,
      moduleIndex: job.spec.moduleIndex ?? null,
    },
  });
  job.emit({ type: "checkpoint", step, path: job.files.checkpoint });
}

/** A loader batch as the train graph's inputs: hard labels, or soft targets when Mixup/CutMix is on. */
function toEngineBatch(batch: DataBatch, cfg: VitConfig, size: number, soft: boolean): Batch {
  const out: Batch = {
    [INPUT.images]: f32([size, cfg.channels, cfg.imageSize, cfg.imageSize], batch.images),
  };
  if (soft) out[INPUT.targets] = f32([size, cfg.numClasses], batch.targets!);
  else out[INPUT.labels] = { dtype: "int64", shape: [size], data: batch.labels as BigInt64Array };
  return out;
}

/**
 * Steps from `state.step` to the phase's total: throttled progress events, a checkpoint every
 * `checkpointEvery` steps and at the end, and on cancellation a checkpoint before stopping.
 * A non-finite loss fails the job for good (a retry would repeat it). Returns the last loss.
 */
export async function trainLoop(
  job: JobContext,
  state: TrainingState,
  options: RunJobOptions,
  curve: CurveRecorder | null = null,
): Promise<number | null> {
  const { spec, settings, model, emit } = job;
  const total = settings.steps;
  const interval = options.progressIntervalMs ?? 500;
  let lastLoss: number | null = null;
  let lastProgress = 0;
  // A resumed job's first point was recorded by the attempt that reached its checkpoint.
  if (curve && state.step === 0) await curve.record(state.trainer, 0);
  // Curve points are not training: the throughput and ETA leave their time out.
  const timing = { since: performance.now(), steps: 0, scoring: 0 };
  for (; state.step < total; state.step++) {
    const step = state.step;
    if (options.signal?.aborted) {
      saveTrainingCheckpoint(job, state, step);
      throw new JobCancelledError(`cancelled at step ${step} of ${total}; checkpoint saved`);
    }
    const batch = toEngineBatch(
      state.loader.next(),
      model.cfg,
      settings.batchSize,
      settings.mix !== undefined,
    );
    if (settings.dropPath > 0) {
      batch[INPUT.dropMask] = f32(
        dropMaskShape(model.depth, settings.batchSize),
        dropPathMasks(state.dropRng, settings.dropPath, model.depth, settings.batchSize),
      );
    }
    const lr = learningRate(settings, step);
    const result = await state.trainer.trainStep(batch, lr);
    if (!Number.isFinite(result.loss)) {
      throw new JobFailedError(
        `loss became ${result.loss} at step ${step + 1} of ${total} (lr ${lr.toExponential(2)}); lower the learning rate or enable clipping`,
      );
    }
    lastLoss = result.loss;
    timing.steps++;
    if (curve?.due(step + 1, total)) {
      const before = performance.now();
      await curve.record(state.trainer, step + 1);
      timing.scoring += performance.now() - before;
    }
    const now = performance.now();
    if (now - lastProgress >= interval || step === total - 1) {
      const perStep = (now - timing.since - timing.scoring) / timing.steps / 1000;
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
    if (spec.checkpointEvery && (step + 1) % spec.checkpointEvery === 0 && step + 1 < total)
      saveTrainingCheckpoint(job, state, step + 1);
  }
  saveTrainingCheckpoint(job, state, total);
  return lastLoss;
}

/**
 * What the job contributes, under timm names, without optimizer state or (MT) the frozen meta
 * stages: the meta model, module i, or the whole target. Returns the values it wrote.
 */
export function saveFinalWeights(job: JobContext, trainer: Trainer): Map<string, Float32Array> {
  const { spec, model } = job;
  const all = trainer.parameters();
  const parameters = new Map(model.keep.map((s) => [s.name, all.get(s.name)!] as const));
  saveWeights(
    job.files.weights,
    { parameters, shapes: model.keep },
    {
      metadata: {
        phase: spec.phase,
        ...(spec.moduleIndex !== undefined ? { moduleIndex: String(spec.moduleIndex) } : {}),
      },
    },
  );
  return parameters;
}

/**
 * The held-out accuracy of the model a run delivers (FT, E2E), when the spec gives held-out
 * data. PT's meta model and MT's hybrid are scored only on the curve's subset (job-eval.ts).
 */
export async function evaluateFinal(job: JobContext, trainer: Trainer): Promise<Evaluation | null> {
  const { spec, settings, model } = job;
  if (!spec.evalDataset || spec.phase === "modular" || spec.phase === "pretrain") return null;
  const ev = await evaluate(trainer, spec.evalDataset, model.cfg, settings.batchSize, {
    normalize: trainingNormalization(spec, settings),
    ...(spec.evalLimit !== undefined ? { limit: spec.evalLimit } : {}),
    ...(spec.dataCache ? { cache: spec.dataCache } : {}),
  });
  job.emit({ type: "eval", ...ev });
  return ev;
}

/** The final weights as a plain ONNX inference model, from exactly the values the weights file holds. */
export function exportModel(
  path: string,
  cfg: VitConfig,
  weights: ReadonlyMap<string, Float32Array>,
): string {
  exportVitOnnx(path, cfg, weights);
  return path;
}

/** The job's result: what it trained, how well, what it cost, and every file it produced. */
export function jobResult(
  job: JobContext,
  data: JobData,
  outcome: Pick<JobResult, "finalLoss" | "wallSeconds" | "assembled" | "onnxPath"> & {
    evaluation: Evaluation | null;
  },
): JobResult {
  const { spec, settings, model, files } = job;
  const { evaluation, ...rest } = outcome;
  const bytesRead = data.train.stats.bytesRead;
  return {
    phase: spec.phase,
    ...(spec.moduleIndex !== undefined ? { moduleIndex: spec.moduleIndex } : {}),
    steps: settings.steps,
    evalAccuracy: evaluation?.accuracy ?? null,
    evalLoss: evaluation?.loss ?? null,
    weightsPath: files.weights,
    checkpointPath: files.checkpoint,
    bytesRead,
    data: { ...data.stats, bytesRead }, // image folders read lazily, during training
    ...("adapters" in model && model.adapters?.length ? { adapters: model.adapters } : {}),
    ...rest,
  };
}
