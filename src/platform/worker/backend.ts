/**
 * Where a TrainingWorker gets jobs and sends what they produce. Two implementations with one
 * behaviour: DbWorkerBackend calls the job lifecycle directly (the worker reaches the database),
 * ApiWorkerBackend (api-backend.ts) calls the same lifecycle through the GraphQL API with a
 * worker token (the worker reaches only the API).
 */
import type { JobResult } from "../../incubation/job.ts";
import type { ArtifactStore, StoredArtifact } from "../artifacts/store.ts";
import type {
  ClaimedJob,
  HeartbeatAnswer,
  Holder,
  JobLifecycle,
  ProducedArtifact,
  WorkerEvent,
  WorkerIdentity,
} from "./job-lifecycle.ts";

export interface WorkerBackend {
  /** The next job this worker may take, or null. */
  claim(): Promise<ClaimedJob | null>;
  heartbeat(h: Holder): Promise<HeartbeatAnswer>;
  /** `batchKey`: the batch's name, the same on every retry of it, so it is recorded once. */
  recordEvents(h: Holder, events: WorkerEvent[], batchKey: string): Promise<void>;
  complete(h: Holder, result: JobResult, artifacts: ProducedArtifact[]): Promise<void>;
  fail(h: Holder, message: string, permanent: boolean): Promise<{ willRetry: boolean }>;
  /** Put a file into the platform's artifact store. */
  putArtifact(path: string): Promise<StoredArtifact>;
  /** A local path holding an artifact's bytes (verified). */
  getArtifact(sha256: string): Promise<string>;
}

export class DbWorkerBackend implements WorkerBackend {
  constructor(
    private readonly lifecycle: JobLifecycle,
    private readonly store: ArtifactStore,
    private readonly identity: WorkerIdentity,
  ) {}

  claim() {
    return this.lifecycle.claimNext(this.identity);
  }
  heartbeat(h: Holder) {
    return this.lifecycle.heartbeat(h);
  }
  async recordEvents(h: Holder, events: WorkerEvent[], batchKey: string) {
    await this.lifecycle.recordEvents(h, events, batchKey);
  }
  complete(h: Holder, result: JobResult, artifacts: ProducedArtifact[]) {
    return this.lifecycle.complete(h, result, artifacts);
  }
  fail(h: Holder, message: string, permanent: boolean) {
    return this.lifecycle.fail(h, message, permanent);
  }
  putArtifact(path: string) {
    return this.store.putFile(path);
  }
  getArtifact(sha256: string) {
    return this.store.getFile(sha256);
  }
}
