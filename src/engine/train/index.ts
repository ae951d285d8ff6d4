export {
  buildEvalGraph,
  buildTrainStepGraph,
  type CompiledModel,
  compileEval,
  compileTrainLoop,
  compileTrainStep,
} from "./compile.ts";
export {
  canonicalJson,
  engineSourceHash,
  GRAPH_CACHE_ENV,
  GraphCache,
  type GraphCacheStats,
  graphCacheFromEnv,
  graphKey,
} from "./graph-cache.ts";
export { FlatLayout, type ParamInit, type ParamSlot, type ParamSpec } from "./params.ts";
export {
  type ForwardContext,
  type ForwardFn,
  type ForwardResult,
  type InputSpec,
  NAMES,
  type TrainSpec,
} from "./spec.ts";
export {
  type Batch,
  type CompileTrainerOptions,
  compileTrainer,
  type EvalResult,
  optimizerKey,
  STEP_KEY,
  type StepResult,
  stackBatches,
  Trainer,
  type TrainerArtifacts,
  type TrainerOptions,
} from "./trainer.ts";
