/**
 * Test accuracy of every stage of a finished local run, from its folder, without retraining:
 * the meta model alone, each MT hybrid (module i's trained weights inside the frozen meta model),
 * the target assembled from the modules before fine-tuning, and the final model (an E2E run: the
 * final model only). It answers "which stage carries the spread across seeds".
 *
 * Every model is the network a job of the run built (`buildModel`, job-steps.ts) with the run's
 * own recipe, scored by the jobs' own `evaluate` at the phase's batch size, so the final row is
 * the accuracy the run reported for the same images.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { loadCheckpoint, loadWeights } from "../engine/checkpoint/checkpoint.ts";
import { vitParamSpecs } from "../engine/models/vit.ts";
import type { TrainSpec } from "../engine/train/spec.ts";
import { compileTrainer, Trainer } from "../engine/train/trainer.ts";
import { assembleTarget } from "./assemble.ts";
import type { IncubationResult } from "./incubate.ts";
import { evaluate } from "./job-eval.ts";
import type { JobSpec } from "./job-spec.ts";
import { buildModel, jobFiles, type PhaseModel, trainingNormalization } from "./job-steps.ts";
import { type Phase, phaseSettings } from "./recipe.ts";
import { parseRecordedConfig, type RecordedConfig } from "./recorded-config.ts";

/** The stages a run folder can be scored at: `hybrid-<i>` is module i inside the meta model. */
export type StageName = "meta" | `hybrid-${number}` | "assembled" | "final";

export interface StageAccuracy {
  stage: StageName;
  accuracy: number;
  loss: number;
  images: number;
}

export interface StageEvaluation {
  kind: IncubationResult["kind"];
  /** Test images each stage was scored on. */
  images: number;
  stages: StageAccuracy[];
}

export interface StageEvalOptions {
  /** The run's config when its results.json does not record one (written before it did). */
  config?: RecordedConfig;
  /** Score on the first `limit` test images (default: the run's own evalLimit, else all). */
  limit?: number;
  threads?: number;
  /** Called as each stage is scored. */
  onStage?: (row: StageAccuracy) => void;
}

/** A run folder's results.json, with the error a user can act on when it is missing or not JSON. */
export function readRunResults(runDir: string): IncubationResult {
  const path = join(runDir, "results.json");
  if (!existsSync(path)) throw new Error(`${path}: no such file; is ${runDir} a finished run's folder?`);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as IncubationResult;
  } catch (error) {
    throw new Error(`${path}: not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * A file results.json names, looked for in the run folder first (the jobs write there, and a
 * folder copied elsewhere keeps working), then where it was written (a meta model given with
 * `--meta` lives outside the folder). The error names the results.json field.
 */
function runFile(runDir: string, field: string, recorded: string | undefined): string {
  if (!recorded) throw new Error(`${join(runDir, "results.json")}: no ${field}`);
  const local = join(runDir, basename(recorded));
  if (existsSync(local)) return local;
  if (existsSync(recorded)) return recorded;
  throw new Error(`results.json ${field}: ${local} does not exist`);
}

/**
 * What one stage is scored with: `network` is the spec of the job whose network it is (a whole
 * target is built as an E2E job builds it: fine-tuning's branch would read its start from a
 * file), `phase` the recipe phase whose batch size and normalisation the run scored it with, and
 * `values` every parameter of that network.
 */
interface StageModel {
  network: JobSpec;
  phase: Phase;
  values: (built: PhaseModel) => Map<string, Float32Array>;
}

export async function evaluateStages(
  runDir: string,
  options: StageEvalOptions = {},
): Promise<StageEvaluation> {
  const results = readRunResults(runDir);
  if (results.kind !== "incubation" && results.kind !== "e2e")
    throw new Error(`results.json kind: "${results.kind}" is neither "incubation" nor "e2e"`);
  const config = runConfig(runDir, results, options.config);
  const evalDataset = config.evalDataset;
  if (!evalDataset)
    throw new Error("config.evalDataset: the run has no test set to score on; pass --set evalDataset=…");
  const limit = options.limit ?? config.evalLimit;
  const spec = (phase: Phase, extra: Partial<JobSpec> = {}): JobSpec => ({
    phase,
    target: config.target,
    split: config.split,
    meta: config.meta,
    dataset: config.dataset,
    evalDataset,
    recipe: config.recipe,
    seed: config.seed,
    outDir: runDir,
    ...extra,
  });
  const score = async (stage: StageName, model: StageModel): Promise<StageAccuracy> => {
    const settings = phaseSettings(config.recipe, model.phase);
    const built = buildModel(model.network, settings);
    const parameters = model.values(built);
    const missing = built.trainSpec.params.filter((p) => !parameters.has(p.name)).map((p) => p.name);
    if (missing.length)
      throw new Error(`${stage}: the run's files hold no value for ${missing.slice(0, 4).join(", ")}`);
    const trainer = await Trainer.create(compileTrainer(built.trainSpec as TrainSpec, { eval: true }), {
      initial: parameters,
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    });
    try {
      const ev = await evaluate(trainer, evalDataset, built.cfg, settings.batchSize, {
        normalize: trainingNormalization(model.network, settings),
        ...(limit !== undefined ? { limit } : {}),
      });
      const row = { stage, ...ev };
      options.onStage?.(row);
      return row;
    } finally {
      await trainer.release();
    }
  };

  const files = runFiles(runDir, results, config);
  const rows: StageAccuracy[] = [];
  const target = spec("e2e");
  if (results.kind === "incubation") {
    const { metaPath, modules } = files;
    const meta = loadWeights(metaPath, { expect: vitParamSpecs(config.meta) });
    rows.push(await score("meta", { network: spec("pretrain"), phase: "pretrain", values: () => meta }));

    for (const [i, path] of modules.entries()) {
      const network = spec("modular", { moduleIndex: i, metaWeights: metaPath });
      const values = (built: PhaseModel) => {
        // The frozen meta stages (buildModel reads them), then module i's trained weights.
        const parameters = new Map([...(built.initial ?? []), ...loadWeights(path)]);
        // Width adapters train with the module but are not in its weights file (assembly drops
        // them); the module's checkpoint, beside it, still has them.
        if (built.adapters?.length) {
          const checkpoint = jobFiles(network).checkpoint; // module-<i>.checkpoint.safetensors in runDir
          if (!existsSync(checkpoint))
            throw new Error(
              `hybrid-${i}: its width adapters are only in ${checkpoint}, which does not exist`,
            );
          for (const [name, value] of loadCheckpoint(checkpoint).parameters)
            if (name.startsWith("adapters.")) parameters.set(name, value);
        }
        return parameters;
      };
      rows.push(await score(`hybrid-${i}`, { network, phase: "modular", values }));
    }

    // The target FT starts from: stage i from module i, exactly as the FT job assembles it.
    const sources = modules.map((path, i) => ({ moduleIndex: i, parameters: loadWeights(path) }));
    const assembled = assembleTarget(config.target, config.split, sources).parameters;
    rows.push(await score("assembled", { network: target, phase: "finetune", values: () => assembled }));
  }
  const final = loadWeights(files.finalPath, { expect: vitParamSpecs(config.target) });
  const finalPhase: Phase = results.kind === "e2e" ? "e2e" : "finetune";
  rows.push(await score("final", { network: target, phase: finalPhase, values: () => final }));
  return { kind: results.kind, images: rows[0]!.images, stages: rows };
}

/** Every weights file the stages need, found before any is scored, so a missing one fails at once. */
function runFiles(runDir: string, results: IncubationResult, config: RecordedConfig) {
  const finalPath = runFile(runDir, "weightsPath", results.weightsPath);
  if (results.kind === "e2e") return { finalPath, metaPath: "", modules: [] };
  const k = config.split.length;
  const recorded = results.moduleWeights ?? [];
  if (recorded.length !== k)
    throw new Error(
      `results.json moduleWeights: ${recorded.length} file(s) for a run split into ${k} modules`,
    );
  return {
    finalPath,
    metaPath: runFile(runDir, "metaWeightsPath", results.metaWeightsPath),
    modules: recorded.map((path, i) => runFile(runDir, `moduleWeights[${i}]`, path)),
  };
}

/** The run's recorded config, else the one the caller gives (an older results.json). */
function runConfig(
  runDir: string,
  results: IncubationResult,
  given: RecordedConfig | undefined,
): RecordedConfig {
  if (given) return given;
  if (results.config === undefined)
    throw new Error(
      `${join(runDir, "results.json")} records no config (written before runs recorded theirs); pass --config and the --set overrides the run was started with`,
    );
  return parseRecordedConfig(results.config);
}
