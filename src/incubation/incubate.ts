/**
 * Deep Incubation as a local pipeline: meta pre-training (PT, unless a meta model is given) →
 * K modular-training jobs (MT, in parallel child processes when workers > 1) → assembly → fine-
 * tuning (FT) with evaluation; and the E2E baseline as one job. Writes checkpoints, the final
 * weights, the ONNX inference model and `results.json` (accuracy and wall time per stage, and
 * the accuracy curve against critical-path time and compute, accuracy-curve.ts).
 * Assembly and export are steps of the FT / E2E job (its spec asks for them, job.ts).
 *
 * The platform runs the very same jobs (`runJob`) on workers; this file is the single-machine
 * orchestration behind `incubator incubate` and `incubator train`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { DataStats } from "../data/shard-cache.ts";
import { type AccuracyPoint, type JobCurvePoint, runCurve } from "./accuracy-curve.ts";
import type { RunConfig } from "./config.ts";
import type { WidthAdapter } from "./hybrid.ts";
import { type JobEvent, type JobResult, type JobSpec, runJob } from "./job.ts";
import { onJobEvents, spawnJobProcess } from "./job-process.ts";
import { type RecordedConfig, recordedConfig } from "./recorded-config.ts";
import type { SplitPlan } from "./split-planner.ts";

/** A resolved run config (config.ts) plus where its outputs go; workers/decentralized optional. */
export interface IncubationOptions extends Omit<RunConfig, "workers" | "decentralized"> {
  outDir: string;
  /** Parallel MT jobs (child processes); 1 runs them one after another in this process. */
  workers?: number;
  /** Module i trains only on class-balanced shard i of the training set. */
  decentralized?: boolean;
  /** Skip PT and incubate with this meta model (safetensors, timm names of a K-block ViT). */
  metaWeights?: string;
  /** Path of the `incubator` entry script, for child processes. */
  bin?: string;
  /** Compiled step graphs are cached here (JobSpec.graphCacheDir); none when unset. */
  graphCacheDir?: string;
}

/** What every job of a local pipeline shares. */
function sharedJobFields(opts: Omit<IncubationOptions, "split">, outDir: string) {
  return {
    target: opts.target,
    meta: opts.meta,
    recipe: opts.recipe,
    seed: opts.seed,
    outDir,
    ...(opts.threads ? { threads: opts.threads } : {}),
    ...(opts.checkpointEvery ? { checkpointEvery: opts.checkpointEvery } : {}),
    ...(opts.evalLimit ? { evalLimit: opts.evalLimit } : {}),
    ...(opts.graphCacheDir ? { graphCacheDir: opts.graphCacheDir } : {}),
  };
}

/** Which job an event is about: "pretrain", "module-2", "finetune", "e2e". */
export type StageEvent = JobEvent & { job: string };

export interface StageTiming {
  wallSeconds: number;
}

export interface IncubationResult {
  kind: "incubation" | "e2e";
  accuracy: number | null;
  loss: number | null;
  /** Per job; `data` says how much of the dataset it read (module i of a decentralised run: only shard i). */
  stages: Record<
    string,
    StageTiming & {
      steps: number;
      finalLoss: number | null;
      bytesRead?: number;
      data?: DataStats;
      adapters?: WidthAdapter[];
    }
  >;
  /** The meta model's width (incubation); width adapters joined it to the target's when they differ. */
  metaWidth?: number;
  /**
   * The split planner's plan (`modules: "auto"` / {auto: K}) next to what happened: predicted
   * and measured wall seconds of each MT job, and the even split's prediction for the same K.
   */
  plan?: SplitPlan & { measuredSeconds: number[] };
  /** PT + the slowest MT job + assembly + FT: the wall time if each module had its own machine. */
  criticalPathSeconds: number;
  totalWallSeconds: number;
  weightsPath: string;
  /** The final model as a plain ONNX inference model (input `images`, output `logits`). */
  onnxPath: string;
  metaWeightsPath?: string;
  moduleWeights?: string[];
  /**
   * Every job's curve points (recipe `evalEvery`; empty when it is 0 or there is no held-out
   * data) on the run's critical-path and compute clocks; `incubator compare` reads it.
   */
  accuracyCurve: AccuracyPoint[];
  /** The resolved config the run used (absent in results written before it was recorded). */
  config?: RecordedConfig;
}

type Stage = IncubationResult["stages"][string];

/** A job's row in `results.json`. */
const stageOf = (r: JobResult, wallSeconds = r.wallSeconds): Stage => ({
  wallSeconds,
  steps: r.steps,
  finalLoss: r.finalLoss,
  bytesRead: r.bytesRead,
  data: r.data,
  ...(r.adapters ? { adapters: r.adapters } : {}),
});

/** The ONNX model the job was asked to export (`exportOnnx`). */
function exported(r: JobResult): string {
  if (!r.onnxPath) throw new Error(`the ${r.phase} job exported no ONNX model`);
  return r.onnxPath;
}

const jobName = (spec: Pick<JobSpec, "phase" | "moduleIndex">) =>
  spec.phase === "modular" ? `module-${spec.moduleIndex}` : spec.phase;

/** Relays each job's events as StageEvents and keeps its curve points for the run's curve. */
function eventRelay(onEvent: (event: StageEvent) => void) {
  const points = new Map<string, JobCurvePoint[]>();
  return {
    relay: (job: string) => (event: JobEvent) => {
      if (event.type === "evalPoint") {
        const { step, seconds, accuracy, loss } = event;
        points.set(job, [...(points.get(job) ?? []), { step, seconds, accuracy, loss }]);
      }
      onEvent({ ...event, job });
    },
    /** The run's curve from its finished jobs' results and the points they sent. */
    curve: (results: JobResult[]) =>
      runCurve(
        results.map((r) => ({
          phase: r.phase,
          moduleIndex: r.moduleIndex ?? null,
          wallSeconds: r.wallSeconds,
          points: points.get(jobName(r)) ?? [],
        })),
      ),
  };
}

/** Run one job in a child process (`incubator job`), relaying its JSON-line events. */
function runJobInChild(spec: JobSpec, bin: string, onEvent: (event: JobEvent) => void): Promise<JobResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnJobProcess(bin, JSON.stringify(spec));
    let stderr = "";
    let result: JobResult | undefined;
    onJobEvents(child.stdout, (event) => {
      if (event.type === "done") result = event.result;
      onEvent(event);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0 && result) resolvePromise(result);
      else
        reject(
          new Error(
            `${jobName(spec)} failed (exit ${code}): ${stderr.trim().split("\n").slice(-3).join(" | ")}`,
          ),
        );
    });
  });
}

async function runAll<T>(tasks: (() => Promise<T>)[], parallel: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(parallel, tasks.length) }, async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  });
  await Promise.all(lanes);
  return results;
}

export async function incubate(
  opts: IncubationOptions,
  onEvent: (event: StageEvent) => void = () => {},
): Promise<IncubationResult> {
  const started = performance.now();
  const outDir = resolve(opts.outDir);
  mkdirSync(outDir, { recursive: true });
  const workers = Math.max(1, opts.workers ?? 1);
  const base = { ...sharedJobFields(opts, outDir), split: opts.split };
  const { relay, curve } = eventRelay(onEvent);
  const stages: IncubationResult["stages"] = {};
  // PT and MT score their models on the curve's subset only (job-eval.ts); FT also in full.
  const curveData = opts.evalDataset ? { evalDataset: opts.evalDataset } : {};

  // PT: the meta model (one block per module), unless one is given.
  let metaWeights = opts.metaWeights;
  let pt: JobResult | undefined;
  if (!metaWeights) {
    pt = await runJob(
      { ...base, phase: "pretrain", dataset: opts.dataset, ...curveData },
      { onEvent: relay("pretrain") },
    );
    stages.pretrain = stageOf(pt);
    metaWeights = pt.weightsPath;
  }

  // MT: K independent jobs.
  const k = opts.split.length;
  const mtSpecs: JobSpec[] = Array.from({ length: k }, (_, i) => ({
    ...base,
    phase: "modular" as const,
    moduleIndex: i,
    metaWeights,
    dataset: opts.decentralized
      ? { ...opts.dataset, shard: { count: k, index: i, seed: opts.seed } }
      : opts.dataset,
    ...curveData,
    ...(workers > 1 ? { threads: opts.threads ?? 1 } : {}),
  }));
  const bin = opts.bin ?? resolve(import.meta.dirname, "../../bin/incubator.js");
  const mtResults = await runAll(
    mtSpecs.map(
      (spec) => () =>
        workers > 1
          ? runJobInChild(spec, bin, relay(jobName(spec)))
          : runJob(spec, { onEvent: relay(jobName(spec)) }),
    ),
    workers,
  );
  for (const [i, r] of mtResults.entries()) stages[`module-${i}`] = stageOf(r);

  // FT on the full training set, starting from the target assembled from stage i of job i;
  // then evaluation and the ONNX export.
  const ft = await runJob(
    {
      ...base,
      phase: "finetune",
      dataset: opts.dataset,
      assembleFrom: mtResults.map((r, i) => ({ moduleIndex: i, weights: r.weightsPath })),
      exportOnnx: true,
      ...(opts.evalDataset ? { evalDataset: opts.evalDataset } : {}),
    },
    { onEvent: relay("finetune") },
  );
  // The FT job's wall time includes its assembly; results.json reports the two apart.
  const assembleSeconds = ft.assembled?.wallSeconds ?? 0;
  stages.assemble = { wallSeconds: assembleSeconds, steps: 0, finalLoss: null };
  stages.finetune = stageOf(ft, ft.wallSeconds - assembleSeconds);

  const mtCritical = Math.max(...mtResults.map((r) => r.wallSeconds));
  const result: IncubationResult = {
    kind: "incubation",
    accuracy: ft.evalAccuracy,
    loss: ft.evalLoss,
    stages,
    criticalPathSeconds: (stages.pretrain?.wallSeconds ?? 0) + mtCritical + ft.wallSeconds,
    totalWallSeconds: (performance.now() - started) / 1000,
    weightsPath: ft.weightsPath,
    onnxPath: exported(ft),
    ...(opts.meta ? { metaWidth: opts.meta.width } : {}),
    ...(opts.plan ? { plan: { ...opts.plan, measuredSeconds: mtResults.map((r) => r.wallSeconds) } } : {}),
    metaWeightsPath: metaWeights,
    moduleWeights: mtResults.map((r) => r.weightsPath),
    accuracyCurve: curve([...(pt ? [pt] : []), ...mtResults, ft]),
    config: recordedConfig({ ...opts, decentralized: opts.decentralized ?? false }),
  };
  writeFileSync(join(outDir, "results.json"), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

/** The E2E baseline: the same target trained end to end for `recipe.steps.e2e` steps. */
export async function trainEndToEnd(
  opts: Omit<IncubationOptions, "split" | "workers" | "decentralized" | "metaWeights"> & { split?: number[] },
  onEvent: (event: StageEvent) => void = () => {},
): Promise<IncubationResult> {
  const started = performance.now();
  const outDir = resolve(opts.outDir);
  const { relay, curve } = eventRelay(onEvent);
  const r = await runJob(
    {
      ...sharedJobFields(opts, outDir),
      phase: "e2e",
      split: opts.split ?? [opts.target.depth],
      dataset: opts.dataset,
      exportOnnx: true,
      ...(opts.evalDataset ? { evalDataset: opts.evalDataset } : {}),
    },
    { onEvent: relay("e2e") },
  );
  const result: IncubationResult = {
    kind: "e2e",
    accuracy: r.evalAccuracy,
    loss: r.evalLoss,
    stages: { e2e: stageOf(r) },
    criticalPathSeconds: r.wallSeconds,
    totalWallSeconds: (performance.now() - started) / 1000,
    weightsPath: r.weightsPath,
    onnxPath: exported(r),
    accuracyCurve: curve([r]),
    config: recordedConfig({ ...opts, split: opts.split ?? [opts.target.depth], decentralized: false }),
  };
  writeFileSync(join(outDir, "results.json"), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}
