/** Typed run events for tests that write a run's log directly. */
import type { NewRunEvent } from "../../src/platform/events/run-event.ts";

export const progressEvent = (moduleIndex: number | null, step: number, extra: Partial<NewRunEvent> = {}) =>
  ({
    type: "PROGRESS",
    moduleIndex,
    stage: "MODULAR",
    step,
    totalSteps: 100,
    loss: 2.3,
    lr: 1e-3,
    imagesPerSecond: 100,
    etaSeconds: 1,
    ...extra,
  }) as NewRunEvent;

export const runFinished: NewRunEvent = { type: "RUN_STATE", state: "SUCCEEDED" };

/** Every field of every RunEvent type, as a selection for `runEvents` / `events`. */
export const EVENT_FIELDS = `seq type moduleIndex createdAt
  ... on RunStateChanged { state error finalAccuracy }
  ... on JobStateChanged { job { id } stage jobState: state attempt workerId reason }
  ... on ModuleStateChanged { moduleState: state retry }
  ... on JobStarted { stage totalSteps startStep trainImages dataStats { cache bytesRead bytesFetched cachedBytes records } }
  ... on TrainingProgress { stage step totalSteps loss lr imagesPerSecond etaSeconds }
  ... on EvaluationResult { stage accuracy loss images }
  ... on EvaluationPoint { stage step seconds accuracy loss images }
  ... on ArtifactProduced { kind sha256 step }
  ... on LogMessage { level message }`;

/** A run event as EVENT_FIELDS selects it (fields absent where the type has none). */
export interface SelectedEvent {
  seq: number;
  type: string;
  moduleIndex: number | null;
  createdAt: string;
  state?: string;
  jobState?: string;
  moduleState?: string;
  stage?: string;
  step?: number;
  startStep?: number;
  workerId?: string;
  reason?: string;
  dataStats?: {
    cache: string;
    bytesRead: number;
    bytesFetched: number;
    cachedBytes: number;
    records: number;
  };
  [field: string]: unknown;
}
