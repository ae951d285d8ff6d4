/**
 * What a training job is and says: its spec, its events, its result, its exit codes and errors.
 * Kept apart from job.ts (runJob) and job-steps.ts (its steps), which both use them.
 */
import type { DatasetSpec } from "../data/registry.ts";
import type { DataCacheOptions, DataStats } from "../data/shard-cache.ts";
import type { VitConfig } from "../engine/models/vit.ts";
import type { ExecutionProvider } from "../engine/runtime/providers.ts";
import type { WidthAdapter } from "./hybrid.ts";
import type { Phase, Recipe } from "./recipe.ts";

/** Module i's trained weights, as fine-tuning assembles them (stage i from module i). */
export interface ModuleWeights {
  moduleIndex: number;
  /** Safetensors path (a stored spec holds an `artifact:<sha256>` reference instead). */
  weights: string;
}

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
  /**
   * Held-out data for the final evaluation (FT, E2E) and, when the recipe's `evalEvery` > 0,
   * for every job's accuracy curve (its first `evalSubset` images).
   */
  evalDataset?: DatasetSpec;
  recipe: Recipe;
  seed: number;
  /** Where checkpoints, weights and the other outputs go. */
  outDir: string;
  /** Modular training: the meta model's weights (safetensors, timm names). */
  metaWeights?: string;
  /**
   * The meta model's architecture (PT trains it, MT reads it). Default: the target's with one
   * block per module. Another width is joined to the target's by width adapters (hybrid.ts).
   */
  meta?: VitConfig;
  /** Fine-tuning: the assembled target's weights, when it was assembled elsewhere. */
  initWeights?: string;
  /**
   * Fine-tuning: assemble the target from these modules' weights first, write it to
   * `assembled.safetensors` in outDir and start from it (instead of `initWeights`).
   */
  assembleFrom?: ModuleWeights[];
  /** Write the final weights as a plain ONNX inference model, `model.onnx` in outDir (not MT). */
  exportOnnx?: boolean;
  /** Continue from this job's own checkpoint. */
  resumeFrom?: string;
  checkpointEvery?: number;
  threads?: number;
  provider?: ExecutionProvider;
  /** Evaluate on at most this many held-out images (default all). */
  evalLimit?: number;
  /** Open the training data through this machine's shard cache (and fetch it from `remote` if the source is not here). */
  dataCache?: DataCacheOptions;
  /**
   * Read and write compiled step graphs in this folder (engine/train/graph-cache.ts; keyed by
   * content, so a retry or a later run of the same configuration skips the compile).
   * `INCUBATOR_GRAPH_CACHE=off` ignores it.
   */
  graphCacheDir?: string;
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
  /**
   * A point of the job's accuracy curve: the model after `step` steps scored on the fixed
   * held-out subset (recipe `evalEvery`, `evalSubset`); `seconds` since the job started.
   */
  | { type: "evalPoint"; step: number; seconds: number; accuracy: number; loss: number; images: number }
  | { type: "done"; result: JobResult };

/** The target a fine-tuning job assembled from its modules (`assembleFrom`). */
export interface AssembledModel {
  /** Safetensors of the whole target, the job's initial weights. */
  path: string;
  /** The modules it was assembled from, in stage order. */
  modules: number[];
  /** Part of the job's wallSeconds. */
  wallSeconds: number;
}

export interface JobResult {
  phase: Phase;
  moduleIndex?: number;
  steps: number;
  finalLoss: number | null;
  evalAccuracy: number | null;
  evalLoss: number | null;
  /** The whole job: assembly, training, evaluation and export. */
  wallSeconds: number;
  /** Safetensors with what this job contributes (meta model, module i, or the whole target). */
  weightsPath: string;
  checkpointPath: string;
  /** Bytes the training reader read from the dataset's source (a shard reads only its own; 0 on a cache hit). */
  bytesRead: number;
  data: DataStats;
  /** Modular training: the width adapters module i trained with (dropped from its weights). */
  adapters?: WidthAdapter[];
  /** `assembleFrom`: the assembled target the job started from. */
  assembled?: AssembledModel;
  /** `exportOnnx`: the final weights as an ONNX model (input `images`, output `logits`). */
  onnxPath?: string;
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
