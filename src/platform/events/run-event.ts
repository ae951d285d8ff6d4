/**
 * The one definition of what a run's event log may hold: a discriminated union on `type`, with
 * an enum for every closed set. Writers build these values (the compiler checks their fields),
 * `appendRunEvents` validates them before they are stored, and every reader parses rows back
 * through `parseRunEvent` — nobody casts a payload. GraphQL exposes the same union as the
 * `RunEvent` interface and its concrete types (schema.graphql).
 *
 * Storage: `run_event.type` is the `RunEventType` enum; `payload` holds the remaining fields
 * (everything but `type` and `moduleIndex`, which have columns of their own).
 */
import { z } from "zod";
import {
  ArtifactKind,
  JobState,
  ModuleState,
  RunEventType,
  RunState,
  StageKind,
} from "../../generated/prisma/enums.ts";

export { ArtifactKind, RunEventType };

const stage = z.enum(StageKind);
const finite = z.number().finite();
const count = z.number().int().min(0);

export const LogLevel = { INFO: "INFO", WARN: "WARN", ERROR: "ERROR" } as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** How a job obtained its training data (src/data/shard-cache.ts `DataStats`). */
export const dataStats = z.object({
  cache: z.enum(["hit", "filled-local", "fetched", "off"]),
  bytesRead: count,
  bytesFetched: count,
  cachedBytes: count,
  records: count,
});

const runState = z.object({
  type: z.literal(RunEventType.RUN_STATE),
  state: z.enum(RunState),
  /** FAILED: why. */
  error: z.string().optional(),
  /** SUCCEEDED: held-out accuracy of the final model (META_PRETRAIN runs have none). */
  finalAccuracy: finite.nullable().optional(),
});

const jobState = z.object({
  type: z.literal(RunEventType.JOB_STATE),
  jobId: z.uuid(),
  stage,
  state: z.enum(JobState),
  /** RUNNING: which attempt (1, 2, …) and which worker holds it. */
  attempt: count.optional(),
  workerId: z.string().optional(),
  /** QUEUED again or FAILED: why (a lost heartbeat, the job's error). */
  reason: z.string().optional(),
});

const moduleState = z.object({
  type: z.literal(RunEventType.MODULE_STATE),
  state: z.enum(ModuleState),
  /** True when an operator asked for the module to be trained again (retryModule). */
  retry: z.boolean().default(false),
});

const jobStarted = z.object({
  type: z.literal(RunEventType.JOB_STARTED),
  stage,
  totalSteps: count,
  /** 0 for a fresh start; the checkpoint's step when the job resumed. */
  startStep: count,
  trainImages: count,
  data: dataStats,
});

/** What a training job reports about twice a second (shared with the worker's event schema). */
export const progressFields = {
  step: count,
  totalSteps: count,
  loss: finite,
  lr: finite,
  imagesPerSecond: finite,
  etaSeconds: finite,
};

const progress = z.object({ type: z.literal(RunEventType.PROGRESS), stage, ...progressFields });

const metric = z.object({
  type: z.literal(RunEventType.METRIC),
  stage,
  accuracy: finite,
  loss: finite,
  images: count,
});

/** A point of a job's accuracy curve: its model after `step` steps on the fixed held-out subset. */
export const evalPointFields = {
  step: count,
  /** Since this attempt of the job started (a retry's clock starts again; accuracy-curve.ts joins them). */
  seconds: z.number().finite().min(0),
  accuracy: finite,
  loss: finite,
  images: count,
};

const evalPoint = z.object({ type: z.literal(RunEventType.EVAL_POINT), stage, ...evalPointFields });

const artifact = z.object({
  type: z.literal(RunEventType.ARTIFACT),
  kind: z.enum(ArtifactKind),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  step: count,
});

const log = z.object({
  type: z.literal(RunEventType.LOG),
  level: z.enum(LogLevel),
  message: z.string(),
});

/** The fields of one event as writers give them (and the payload columns hold). */
export const runEventBody = z.discriminatedUnion("type", [
  runState,
  jobState,
  moduleState,
  jobStarted,
  progress,
  metric,
  evalPoint,
  artifact,
  log,
]);
export type RunEventBody = z.input<typeof runEventBody>;
type ParsedBody = z.output<typeof runEventBody>;

/** An event to append: its body and the module it is about (none: the run as a whole). */
export type NewRunEvent = RunEventBody & { moduleIndex?: number | null };

/** An event as stored, parsed. */
export type RunEvent = ParsedBody & {
  runId: string;
  seq: number;
  moduleIndex: number | null;
  createdAt: Date;
};

export type RunEventOf<T extends RunEventType> = Extract<RunEvent, { type: T }>;

/** Splits an event into its columns: validated (a writer's mistake fails loudly, before the insert). */
export function toColumns(event: NewRunEvent): {
  type: RunEventType;
  moduleIndex: number | null;
  payload: Record<string, unknown>;
} {
  const { moduleIndex, ...body } = event;
  const { type, ...payload } = runEventBody.parse(body);
  return { type, moduleIndex: moduleIndex ?? null, payload };
}

/** A stored row back into the union; a row that does not parse is a bug (or an unmigrated row). */
export function parseRunEvent(row: {
  runId: string;
  seq: number;
  type: RunEventType;
  moduleIdx: number | null;
  payload: unknown;
  createdAt: Date;
}): RunEvent {
  const parsed = runEventBody.safeParse({ ...(row.payload as object), type: row.type });
  if (!parsed.success) {
    throw new Error(
      `run ${row.runId} event ${row.seq} (${row.type}) does not match its type: ${z.prettifyError(parsed.error)}`,
    );
  }
  return {
    ...parsed.data,
    runId: row.runId,
    seq: row.seq,
    moduleIndex: row.moduleIdx,
    createdAt: row.createdAt,
  };
}

const TERMINAL_RUN_STATES: ReadonlySet<RunState> = new Set([
  RunState.SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELLED,
]);

/** The event that ends a run's stream: the run reached SUCCEEDED, FAILED or CANCELLED. */
export function isTerminalRunEvent(event: RunEvent): boolean {
  return event.type === RunEventType.RUN_STATE && TERMINAL_RUN_STATES.has(event.state);
}
