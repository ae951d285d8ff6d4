/**
 * From a run's rows (architecture, dataset, recipe, meta model) to the engine's job specs.
 *
 * Specs are stored in `job.spec` with their file inputs as artifact references
 * (`artifact:<sha256>`); a worker resolves those into local paths and chooses its own output
 * directory, so the same spec runs on any machine that reaches the artifact store.
 */
import type { DatasetSpec } from "../../data/registry.ts";
import { VIT_DEFAULTS, type VitConfig, validateVitConfig } from "../../engine/models/vit.ts";
import type { Architecture, Dataset, Run } from "../../generated/prisma/client.ts";
import type { JobSpec } from "../../incubation/job.ts";
import { curveEnabled } from "../../incubation/job-eval.ts";
import { type RecipeOverrides, resolveRecipe } from "../../incubation/recipe.ts";
import { datasetSpecOf } from "../db/json-columns.ts";
import { runSplit } from "../run-split.ts";

export const ARTIFACT_REF = "artifact:";
export const artifactRef = (sha256: string) => `${ARTIFACT_REF}${sha256}`;

/**
 * A job spec as stored: paths (metaWeights, initWeights, assembleFrom's weights) are artifact
 * references; outDir is chosen by the worker, which resolves the references and runs the rest
 * as it is (assembleFrom and exportOnnx are the job's own steps).
 */
export type StoredJobSpec = Omit<JobSpec, "outDir"> & {
  /** The registered dataset it reads: a worker without its files downloads its shard from the API. */
  datasetId?: string;
};

export function targetConfig(arch: Architecture): VitConfig {
  return validateVitConfig({
    ...VIT_DEFAULTS,
    imageSize: arch.imageSize,
    channels: arch.channels,
    patchSize: arch.patchSize,
    width: arch.width,
    depth: arch.depth,
    heads: arch.heads,
    mlpRatio: arch.mlpRatio,
    numClasses: arch.numClasses,
  });
}

function datasetSpecs(dataset: Dataset): { train: DatasetSpec; eval?: DatasetSpec } {
  const train = datasetSpecOf(dataset, { split: "train" });
  if (dataset.testSize > 0) return { train, eval: datasetSpecOf(dataset, { split: "test" }) };
  return { train };
}

export interface RunContext {
  run: Run;
  architecture: Architecture;
  dataset: Dataset;
}

/** What every job of the run shares. */
export function baseSpec(ctx: RunContext): Omit<StoredJobSpec, "phase"> {
  const { run, architecture, dataset } = ctx;
  const data = datasetSpecs(dataset);
  return {
    datasetId: dataset.id,
    target: targetConfig(architecture),
    split: runSplit(run, architecture),
    dataset: data.train,
    ...(data.eval ? { evalDataset: data.eval } : {}),
    recipe: resolveRecipe(run.recipe, run.overrides as RecipeOverrides),
    seed: run.seed,
  };
}

/**
 * Checkpoint about every tenth of a job (between 10 and 500 steps): a crash loses little,
 * and short jobs still leave something to resume from.
 */
export function checkpointInterval(steps: number): number {
  return Math.min(500, Math.max(10, Math.ceil(steps / 10)));
}

function withCheckpoints(spec: StoredJobSpec): StoredJobSpec {
  return { ...spec, checkpointEvery: checkpointInterval(spec.recipe.steps[spec.phase]) };
}

/**
 * PT and MT read the held-out data only for their accuracy curve (FT and E2E also score the
 * final model on it): without a curve (recipe `evalEvery` 0) their specs leave it out.
 */
function curveBase(ctx: RunContext): Omit<StoredJobSpec, "phase"> {
  const base = baseSpec(ctx);
  if (curveEnabled(base)) return base;
  const { evalDataset: _eval, ...rest } = base;
  return rest;
}

export function pretrainSpec(ctx: RunContext): StoredJobSpec {
  return withCheckpoints({ ...curveBase(ctx), phase: "pretrain" });
}

/** MT job `moduleIndex`; `meta` is the meta model's architecture when it is not the default one. */
export function modularSpec(
  ctx: RunContext,
  moduleIndex: number,
  metaWeightsSha: string,
  meta?: VitConfig,
): StoredJobSpec {
  const base = curveBase(ctx);
  const k = base.split.length;
  return withCheckpoints({
    ...base,
    phase: "modular",
    moduleIndex,
    metaWeights: artifactRef(metaWeightsSha),
    ...(meta ? { meta } : {}),
    dataset: ctx.run.decentralized
      ? ({ ...base.dataset, shard: { count: k, index: moduleIndex, seed: ctx.run.seed } } as DatasetSpec)
      : base.dataset,
  });
}

export function finetuneSpec(
  ctx: RunContext,
  modules: { moduleIndex: number; sha256: string }[],
): StoredJobSpec {
  return withCheckpoints({
    ...baseSpec(ctx),
    phase: "finetune",
    assembleFrom: modules.map((m) => ({ moduleIndex: m.moduleIndex, weights: artifactRef(m.sha256) })),
    exportOnnx: true,
  });
}

export function e2eSpec(ctx: RunContext): StoredJobSpec {
  return withCheckpoints({ ...baseSpec(ctx), phase: "e2e", exportOnnx: true });
}
