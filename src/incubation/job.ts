/**
 * One training job — meta pre-training, modular training of module i, fine-tuning, or the E2E
 * baseline — from a JSON job spec to artifacts and events. The same function runs inside the
 * `incubator incubate` child processes and inside platform workers; it knows nothing of either.
 *
 * The spec says everything the job produces: fine-tuning can assemble its starting point from
 * the modules' weights (`assembleFrom`), and any whole-model job can export its final weights as
 * ONNX (`exportOnnx`). Callers only upload or report what the result lists.
 *
 * A job checkpoints every `checkpointEvery` steps (parameters, optimizer state, step, RNG and
 * data-loader state), so a job restarted with `resumeFrom` continues exactly where it stopped.
 * With held-out data and the recipe's `evalEvery`, every job (PT's meta model, MT's hybrid,
 * FT's and E2E's target: each a classifier with its head) records an accuracy curve as
 * `evalPoint` events (job-eval.ts). The steps themselves are in job-steps.ts.
 */
import { openCurve } from "./job-eval.ts";
import type { JobResult, JobSpec, RunJobOptions } from "./job-spec.ts";
import {
  assembleModules,
  buildModel,
  checkOutputs,
  evaluateFinal,
  exportModel,
  jobFiles,
  jobResult,
  openData,
  resumeFromCheckpoint,
  saveFinalWeights,
  startTrainer,
  trainingNormalization,
  trainLoop,
} from "./job-steps.ts";
import { phaseSettings } from "./recipe.ts";

export * from "./job-spec.ts";

export async function runJob(spec: JobSpec, options: RunJobOptions = {}): Promise<JobResult> {
  const started = performance.now();
  const emit = options.onEvent ?? (() => {});
  checkOutputs(spec);
  const settings = phaseSettings(spec.recipe, spec.phase);
  const files = jobFiles(spec);
  const assembled = spec.assembleFrom && assembleModules(spec, spec.assembleFrom, files.assembled);
  const model = buildModel(assembled ? { ...spec, initWeights: assembled.path } : spec, settings);
  const job = { spec, settings, model, files, emit };
  const data = await openData(job);
  const curve = await openCurve({
    spec,
    cfg: model.cfg,
    batchSize: settings.batchSize,
    normalize: trainingNormalization(spec, settings),
    emit,
    started,
  });
  const state = await startTrainer(job, data.loader);
  try {
    resumeFromCheckpoint(state, spec.resumeFrom);
    emit({
      type: "start",
      phase: spec.phase,
      ...(spec.moduleIndex !== undefined ? { moduleIndex: spec.moduleIndex } : {}),
      totalSteps: settings.steps,
      startStep: state.step,
      trainImages: data.train.length,
      data: data.stats,
    });
    const finalLoss = await trainLoop(job, state, options, curve);
    const weights = saveFinalWeights(job, state.trainer);
    const evaluation = await evaluateFinal(job, state.trainer);
    const onnxPath = spec.exportOnnx ? exportModel(files.onnx, model.cfg, weights) : undefined;
    const result = jobResult(job, data, {
      finalLoss,
      evaluation,
      wallSeconds: (performance.now() - started) / 1000,
      ...(assembled ? { assembled } : {}),
      ...(onnxPath ? { onnxPath } : {}),
    });
    emit({ type: "done", result });
    return result;
  } finally {
    await state.trainer.release();
  }
}
