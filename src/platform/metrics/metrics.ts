/**
 * THE list of Prometheus metrics (prom-client): every metric the platform exposes is defined
 * here, once, with its help text and its labels, and every label value comes from a closed set
 * (an enum below or a database enum), so no caller can make a series of its own.
 *
 * Which process has which figures (docs/metrics.md):
 * - *Database figures* (runs, modules, queue depth, workers' heartbeats and steps/s) are read
 *   from the database when `/metrics` is scraped (database-figures.ts), by the API process
 *   that serves it: any one API process shows the whole platform's.
 * - *Job timings* are observed where a job's state changes (state/apply.ts, after the commit):
 *   the API process for API workers, local workers (`serve --workers N`), cancellations and the
 *   stale sweep; a database worker (`incubator worker` with `DATABASE_URL`) observes its own
 *   claims and completions in its own process.
 * - *Fan-out, subscriptions, WebSockets and GraphQL requests* are the serving API process's own.
 * - prom-client's default process metrics (`process_*`, `nodejs_*`, standard names so that
 *   existing Node.js dashboards work) are those of the process that serves `/metrics`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { JobState, ModuleState, RunKind, RunState, StageKind } from "../../generated/prisma/enums.ts";

export { JobState, ModuleState, RunKind, RunState, StageKind };

/** How a job's attempt ended: a final state, or back to the queue for a retry. */
export const JobAttemptOutcome = {
  SUCCEEDED: "SUCCEEDED",
  FAILED: "FAILED",
  CANCELLED: "CANCELLED",
  REQUEUED: "REQUEUED",
} as const;
export type JobAttemptOutcome = (typeof JobAttemptOutcome)[keyof typeof JobAttemptOutcome];

/** How a GraphQL request over HTTP ended. */
export const GraphQLOutcome = {
  /** No errors (mutations' `userErrors` included: the request itself succeeded). */
  OK: "OK",
  /** Did not parse or validate, or named no operation it holds: nothing ran. */
  INVALID: "INVALID",
  /** UNAUTHENTICATED or FORBIDDEN. */
  REFUSED: "REFUSED",
  /** Ran, and some field failed. */
  ERROR: "ERROR",
} as const;
export type GraphQLOutcome = (typeof GraphQLOutcome)[keyof typeof GraphQLOutcome];

export const GraphQLOperationType = {
  QUERY: "query",
  MUTATION: "mutation",
  SUBSCRIPTION: "subscription",
  /** The request never resolved to an operation (INVALID). */
  UNKNOWN: "unknown",
} as const;
export type GraphQLOperationType = (typeof GraphQLOperationType)[keyof typeof GraphQLOperationType];

/** A run event handed to a subscriber from the replay (`afterSeq`) or as it was written. */
export const DeliveryMode = { LIVE: "LIVE", REPLAY: "REPLAY" } as const;
export type DeliveryMode = (typeof DeliveryMode)[keyof typeof DeliveryMode];

export const registry = new Registry();
const registers = [registry];

// ---- database figures (read at scrape time: database-figures.ts) ------------------------------

export const runsByState = new Gauge<"state" | "kind">({
  name: "incubator_runs",
  help: "Runs by state and kind (from the database at scrape time).",
  labelNames: ["state", "kind"],
  registers,
});

export const modulesByState = new Gauge<"state">({
  name: "incubator_modules",
  help: "Modules of every run by state (from the database at scrape time).",
  labelNames: ["state"],
  registers,
});

export const queueDepth = new Gauge<"stage">({
  name: "incubator_queue_depth",
  help: "Jobs waiting for a worker (state QUEUED) by stage (from the database at scrape time).",
  labelNames: ["stage"],
  registers,
});

export const workerLastHeartbeat = new Gauge<"worker">({
  name: "incubator_worker_last_heartbeat_timestamp_seconds",
  help:
    "Unix time (database clock) of the newest heartbeat of each worker that held a job in the last " +
    "hour (from the database at scrape time). Workers heartbeat only while they hold a job.",
  labelNames: ["worker"],
  registers,
});

export const workerStepsPerSecond = new Gauge<"worker">({
  name: "incubator_worker_steps_per_second",
  help:
    "Training steps per second of each worker's running job, from the job's newest progress event " +
    "(images/s divided by the batch size; from the database at scrape time).",
  labelNames: ["worker"],
  registers,
});

// ---- job timings (observed where job states change: state/apply.ts) ---------------------------

export const jobWaitSeconds = new Histogram<"stage">({
  name: "incubator_job_wait_seconds",
  help:
    "Seconds a job waited from being queued to its first claim by a worker (first attempts; " +
    "retries wait out their backoff), observed by the process that applied the claim.",
  labelNames: ["stage"],
  buckets: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600],
  registers,
});

export const jobRunSeconds = new Histogram<"stage" | "outcome">({
  name: "incubator_job_run_seconds",
  help:
    "Seconds one attempt of a job ran, from its claim to its end (outcome: SUCCEEDED, FAILED, " +
    "CANCELLED, or REQUEUED for a retry), observed by the process that applied the end.",
  labelNames: ["stage", "outcome"],
  buckets: [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600],
  registers,
});

// ---- run-event fan-out and subscriptions (this API process) -----------------------------------

export const eventFanOutLag = new Histogram({
  name: "incubator_event_fanout_lag_seconds",
  help:
    "Seconds from a run event's commit (its row's created_at) to its hand-over to a live " +
    "subscriber in this process (replayed events are not observed).",
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers,
});

export const eventsDelivered = new Counter<"mode">({
  name: "incubator_run_events_delivered_total",
  help: "Run events handed to subscribers in this process, LIVE or from a REPLAY after afterSeq.",
  labelNames: ["mode"],
  registers,
});

export const subscriptionsOpen = new Gauge({
  name: "incubator_subscriptions_open",
  help: "runEvents subscriptions open in this API process.",
  registers,
});

export const webSocketsOpen = new Gauge({
  name: "incubator_websocket_connections_open",
  help: "graphql-ws WebSocket connections open to this API process.",
  registers,
});

// ---- GraphQL over HTTP (this API process: api/metrics-plugin.ts) ------------------------------

export const graphqlRequestSeconds = new Histogram<"operation" | "type" | "outcome">({
  name: "incubator_graphql_request_duration_seconds",
  help:
    "GraphQL requests over HTTP by operation name, operation type and outcome, and their latency " +
    "in seconds. Anonymous operations are (anonymous); past the cap of distinct names, or " +
    "unresolved, (other).",
  labelNames: ["operation", "type", "outcome"],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers,
});

let processMetrics = false;
/** prom-client's default process metrics, once per process (only a process that serves /metrics needs them). */
export function enableProcessMetrics(): void {
  if (processMetrics) return;
  processMetrics = true;
  collectDefaultMetrics({ register: registry });
}
