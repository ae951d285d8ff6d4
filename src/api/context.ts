/** What every resolver receives, per HTTP request or per WebSocket subscription. */
import type { ArtifactStore } from "../platform/artifacts/store.ts";
import type { Db } from "../platform/db/client.ts";
import type { RunEventHub } from "../platform/events/event-hub.ts";
import type { Logger } from "../platform/logger.ts";
import type { JobLifecycle } from "../platform/worker/job-lifecycle.ts";
import type { Principal } from "./auth/principal.ts";
import type { Loaders } from "./loaders.ts";

/**
 * Where the API hands runs to the scheduler (the platform implements it with pg-boss). The API
 * has already written the rows and validated the request; the dispatcher queues, cancels or
 * retries the work and moves states on. Errors it throws are system errors, not user errors.
 */
export interface RunDispatcher {
  /** A run (state QUEUED) and its modules were just created. */
  runCreated(runId: string): Promise<void>;
  /** Cancel a run that has not finished, reaching its running workers. */
  cancelRun(runId: string): Promise<void>;
  /** Train a FAILED or CANCELLED module again (from its last checkpoint). */
  retryModule(moduleId: string): Promise<void>;
}

/** The default when no scheduler is attached: runs stay QUEUED, nothing is cancelled or retried. */
export const noopDispatcher: RunDispatcher = {
  runCreated: async () => {},
  cancelRun: async () => {},
  retryModule: async () => {},
};

export interface ApiContext {
  /** The database, limited to the caller's projects (auth/scope.ts). */
  db: Db;
  /** This request's id (`x-request-id`; per operation over WebSocket), in logs and masked errors. */
  requestId: string;
  /** Folders inside which server-side files named by clients may be read (DATA_ROOTS). */
  dataRoots: readonly string[];
  /** Total parameters an architecture may have (MAX_PARAMETERS). */
  maxParameters: number;
  /** Artifact bytes of a project without its own quota (ARTIFACT_QUOTA_BYTES). */
  artifactQuotaBytes: number;
  /** Who is calling (auth/principal.ts); root fields are already checked against auth/policy.ts. */
  principal: Principal;
  /** Fans run events out to subscriptions (one LISTEN connection per process). */
  events: RunEventHub;
  logger: Logger;
  startedAt: Date;
  version: string;
  dispatcher: RunDispatcher;
  /** Where uploaded or registered files go (absent: such mutations are unavailable). */
  artifacts?: ArtifactStore;
  /** DataLoaders, fresh for each request (or each subscription operation). */
  loaders: Loaders;
  /**
   * The request's `Authorization` header (HTTP) or `authorization` connection parameter
   * (graphql-ws); worker calls check it (worker-auth.ts).
   */
  authorization?: string;
  /** The job state machine, for workers calling through the API (absent: no queue attached). */
  lifecycle?: JobLifecycle;
}
