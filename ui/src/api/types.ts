/**
 * The shapes the dashboard's queries select. Enums (closed sets) come from schema.graphql
 * through codegen (generated/schema.ts), so a renamed state fails the type check.
 */
import type {
  ArtifactKind,
  JobState,
  LogLevel,
  ModuleState,
  RunEventType,
  RunKind,
  RunState,
  StageKind,
} from "../generated/schema.ts";

export type * from "../generated/schema.ts";

export const RUN_STATES: readonly RunState[] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
export const RUN_KINDS: readonly RunKind[] = ["INCUBATION", "E2E", "META_PRETRAIN"];
export const TERMINAL_RUN_STATES: ReadonlySet<RunState> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);
export const RETRYABLE_MODULE_STATES: ReadonlySet<ModuleState> = new Set(["FAILED", "CANCELLED"]);

export interface RunSummary {
  id: string;
  kind: RunKind;
  state: RunState;
  accuracy: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  architecture: { name: string };
  dataset: { name: string };
  modules: { step: number; totalSteps: number }[];
  stages: { kind: StageKind; state: JobState }[];
}

export interface ArtifactRef {
  kind: ArtifactKind;
  sha256: string;
  downloadUrl: string;
  sizeBytes: number;
  step: number | null;
  module: { index: number } | null;
}

export interface JobView {
  id: string;
  stage: StageKind;
  state: JobState;
  attempts: number;
  workerId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  module: { index: number } | null;
}

export interface ModuleView {
  id: string;
  index: number;
  blockStart: number;
  blockEnd: number;
  state: ModuleState;
  step: number;
  totalSteps: number;
  loss: number | null;
  shard: number | null;
  attempts: number;
  progress: {
    step: number | null;
    totalSteps: number | null;
    loss: number | null;
    imagesPerSecond: number | null;
    etaSeconds: number | null;
    seq: number;
  } | null;
  jobs: { workerId: string | null; state: JobState }[];
}

export interface RunDetail {
  id: string;
  kind: RunKind;
  state: RunState;
  recipe: string;
  seed: number;
  decentralized: boolean;
  error: string | null;
  accuracy: number | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  architecture: {
    id: string;
    name: string;
    numModules: number;
    runs: { nodes: { id: string; kind: RunKind; accuracy: number | null; dataset: { id: string } }[] };
  };
  dataset: { id: string; name: string };
  metaModel: { id: string; name: string; checkpoint: ArtifactRef | null } | null;
  jobs: JobView[];
  modules: ModuleView[];
  artifacts: ArtifactRef[];
  finalModel: ArtifactRef | null;
  accuracyCurve: AccuracyPointView[];
  splitPlan: SplitPlanView | null;
}

/** schema.graphql `AccuracyPoint`: one held-out score on the run's two clocks. */
export interface AccuracyPointView {
  stage: StageKind;
  moduleIndex: number | null;
  step: number;
  criticalPathSeconds: number;
  computeSeconds: number;
  accuracy: number;
}

/** schema.graphql `SplitPlan`: the planner's seconds per MT job beside what they took. */
export interface SplitPlanView {
  split: number[];
  predictedSeconds: number[];
  evenSplit: number[];
  evenPredictedSeconds: number[];
  measuredSeconds: (number | null)[];
}

export interface ModuleLineageView {
  index: number;
  lineage: {
    metaModel: { name: string; checkpoint: ArtifactRef | null } | null;
    shard: number | null;
    checkpoints: ArtifactRef[];
    assembledInto: ArtifactRef | null;
  };
}

/** One run event as the dashboard selects it (api/queries.ts RUN_EVENT_FIELDS). */
export interface RunEventView {
  seq: number;
  type: RunEventType;
  moduleIndex: number | null;
  createdAt: string;
  runState?: RunState;
  finalAccuracy?: number | null;
  error?: string | null;
  jobState?: JobState;
  moduleState?: ModuleState;
  stage?: StageKind;
  attempt?: number | null;
  workerId?: string | null;
  step?: number;
  totalSteps?: number;
  loss?: number;
  lr?: number;
  imagesPerSecond?: number;
  etaSeconds?: number;
  accuracy?: number;
  level?: LogLevel;
  message?: string;
}
