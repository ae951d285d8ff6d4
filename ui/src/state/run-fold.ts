/**
 * A run's event log folded into what the run page draws: loss and learning-rate series per
 * module and for the run's own stages, each module's live progress, the final state. Events
 * are applied strictly in `seq` order: one already applied is dropped (a replay after a
 * reconnect), and one past a gap stops the batch so the stream can resubscribe from `lastSeq`.
 * The fold is plain data, so it survives a reload in sessionStorage and the page resumes with
 * `afterSeq = lastSeq` instead of replaying the whole log.
 */
import type { ModuleState, RunEventView, RunState, StageKind } from "../api/types.ts";

/** [seq, step, loss, lr]: compact, because a long run holds tens of thousands. */
export type SeriesPoint = [seq: number, step: number, loss: number, lr: number];

export interface ModuleLive {
  state: ModuleState | null;
  workerId: string | null;
  attempt: number | null;
  step: number;
  totalSteps: number;
  loss: number | null;
  etaSeconds: number | null;
  /** From the last two progress events of the same stage; null until there are two. */
  stepsPerSecond: number | null;
  /** The seq of the newest progress event applied (to compare with the API's module.progress). */
  progressSeq: number;
  lastProgressAtMs: number;
}

export interface LogLine {
  seq: number;
  moduleIndex: number | null;
  level: string;
  message: string;
  at: string;
}

export interface FoldData {
  version: 1;
  runId: string;
  lastSeq: number;
  /** `module:<i>` or `run:<stage>` → points in seq order. */
  series: Record<string, SeriesPoint[]>;
  modules: Record<number, ModuleLive>;
  runState: RunState | null;
  finalAccuracy: number | null;
  evaluations: { stage: StageKind; moduleIndex: number | null; accuracy: number; at: string }[];
  logs: LogLine[];
  /**
   * Events that change what the run query returns (states, artifacts, a curve point for
   * `Run.accuracyCurve`): the page refetches on them.
   */
  rowChanges: number;
}

export interface ApplyOutcome {
  applied: number;
  duplicates: number;
  /** The seq that arrived when `lastSeq + 1` was expected; the rest of the batch was not applied. */
  gapAt: number | null;
}

const MAX_LOGS = 50;
const TERMINAL: ReadonlySet<RunState> = new Set(["SUCCEEDED", "FAILED", "CANCELLED"]);

export const seriesKey = (moduleIndex: number | null, stage: StageKind): string =>
  moduleIndex === null ? `run:${stage}` : `module:${moduleIndex}`;

export function emptyFold(runId: string): FoldData {
  return {
    version: 1,
    runId,
    lastSeq: 0,
    series: {},
    modules: {},
    runState: null,
    finalAccuracy: null,
    evaluations: [],
    logs: [],
    rowChanges: 0,
  };
}

const newModule = (): ModuleLive => ({
  state: null,
  workerId: null,
  attempt: null,
  step: 0,
  totalSteps: 0,
  loss: null,
  etaSeconds: null,
  stepsPerSecond: null,
  progressSeq: 0,
  lastProgressAtMs: 0,
});

export function isFinished(fold: FoldData): boolean {
  return fold.runState !== null && TERMINAL.has(fold.runState);
}

/** Apply a batch in order (mutates `fold`). */
export function applyEvents(fold: FoldData, events: readonly RunEventView[]): ApplyOutcome {
  const outcome: ApplyOutcome = { applied: 0, duplicates: 0, gapAt: null };
  for (const event of events) {
    if (event.seq <= fold.lastSeq) {
      outcome.duplicates++;
      continue;
    }
    if (event.seq !== fold.lastSeq + 1) {
      outcome.gapAt = event.seq;
      break;
    }
    applyOne(fold, event);
    fold.lastSeq = event.seq;
    outcome.applied++;
  }
  return outcome;
}

function moduleOf(fold: FoldData, index: number): ModuleLive {
  fold.modules[index] ??= newModule();
  return fold.modules[index];
}

const ROW_CHANGES: ReadonlySet<RunEventView["type"]> = new Set([
  "RUN_STATE",
  "JOB_STATE",
  "MODULE_STATE",
  "ARTIFACT",
  // The point's place on the critical-path and compute clocks needs the other jobs' wall
  // times, which the API has: the page refetches `Run.accuracyCurve` rather than placing it here.
  "EVAL_POINT",
]);

function applyOne(fold: FoldData, e: RunEventView): void {
  if (ROW_CHANGES.has(e.type)) fold.rowChanges++;
  switch (e.type) {
    case "PROGRESS": {
      if (e.stage === undefined || e.step === undefined || e.loss === undefined || e.lr === undefined) return;
      const key = seriesKey(e.moduleIndex, e.stage);
      fold.series[key] ??= [];
      fold.series[key].push([e.seq, e.step, e.loss, e.lr]);
      if (e.moduleIndex === null) return;
      const m = moduleOf(fold, e.moduleIndex);
      const at = Date.parse(e.createdAt);
      const dt = (at - m.lastProgressAtMs) / 1000;
      m.stepsPerSecond =
        m.progressSeq > 0 && dt > 0 && e.step >= m.step ? (e.step - m.step) / dt : m.stepsPerSecond;
      m.step = e.step;
      m.totalSteps = e.totalSteps ?? m.totalSteps;
      m.loss = e.loss;
      m.etaSeconds = e.etaSeconds ?? null;
      m.progressSeq = e.seq;
      m.lastProgressAtMs = at;
      return;
    }
    case "MODULE_STATE":
      if (e.moduleIndex !== null && e.moduleState) moduleOf(fold, e.moduleIndex).state = e.moduleState;
      return;
    case "JOB_STATE":
      if (e.moduleIndex !== null && e.jobState === "RUNNING") {
        const m = moduleOf(fold, e.moduleIndex);
        m.workerId = e.workerId ?? null;
        m.attempt = e.attempt ?? null;
        m.stepsPerSecond = null; // a new attempt: its speed starts over
        m.progressSeq = 0;
      }
      return;
    case "JOB_STARTED":
      if (e.moduleIndex !== null && e.totalSteps !== undefined)
        moduleOf(fold, e.moduleIndex).totalSteps = e.totalSteps;
      return;
    case "METRIC":
      if (e.stage !== undefined && e.accuracy !== undefined)
        fold.evaluations.push({
          stage: e.stage,
          moduleIndex: e.moduleIndex,
          accuracy: e.accuracy,
          at: e.createdAt,
        });
      return;
    case "RUN_STATE":
      if (e.runState) fold.runState = e.runState;
      if (e.finalAccuracy !== undefined && e.finalAccuracy !== null) fold.finalAccuracy = e.finalAccuracy;
      return;
    case "LOG":
      fold.logs.push({
        seq: e.seq,
        moduleIndex: e.moduleIndex,
        level: e.level ?? "INFO",
        message: e.message ?? "",
        at: e.createdAt,
      });
      if (fold.logs.length > MAX_LOGS) fold.logs.splice(0, fold.logs.length - MAX_LOGS);
      return;
    case "ARTIFACT":
      return;
  }
}

// ---- keeping the fold across a reload -------------------------------------------------------

/** What the fold needs of sessionStorage (kept DOM-free so tests run it in Node). */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

const storageKey = (runId: string) => `incubator.runEvents.${runId}`;

/** The fold saved for this run in this tab, or an empty one (also when the saved one is unreadable). */
export function restoreFold(runId: string, storage: Pick<KeyValueStore, "getItem"> | null): FoldData {
  try {
    const raw = storage?.getItem(storageKey(runId));
    if (raw) {
      const data = JSON.parse(raw) as FoldData;
      if (data.version === 1 && data.runId === runId && Number.isInteger(data.lastSeq))
        return { ...emptyFold(runId), ...data };
    }
  } catch {
    // unreadable or storage disabled: replay from the start
  }
  return emptyFold(runId);
}

export function saveFold(fold: FoldData, storage: KeyValueStore | null): void {
  try {
    storage?.setItem(storageKey(fold.runId), JSON.stringify(fold));
  } catch {
    // quota exceeded: the next reload replays from seq 0 instead, which is only slower
    storage?.removeItem(storageKey(fold.runId));
  }
}
