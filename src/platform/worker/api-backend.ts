/**
 * A worker backend for workers that reach only the platform's API (another site, no database
 * access): GraphQL mutations with a worker token for the job lifecycle, `PUT /artifacts/<sha>`
 * for uploads, `GET /artifacts/<sha>` for inputs (kept in a local content-addressed cache, so a
 * meta model is downloaded once per machine).
 */
import { createReadStream, statSync } from "node:fs";
import { Readable } from "node:stream";
import { sha256File } from "../../engine/checkpoint/file-hash.ts";
import type { JobResult } from "../../incubation/job.ts";
import { ARTIFACT_QUOTA_EXCEEDED } from "../artifacts/quota.ts";
import { ArtifactIntegrityError, LocalArtifactStore, type StoredArtifact } from "../artifacts/store.ts";
import { parseStoredJobSpec } from "../dispatch/stored-spec.ts";
import type { WorkerBackend } from "./backend.ts";
import {
  type ClaimedJob,
  type HeartbeatAnswer,
  type Holder,
  JobNotHeldError,
  type ProducedArtifact,
  type WorkerEvent,
  type WorkerIdentity,
} from "./job-lifecycle.ts";

/** The API refused the token: the worker cannot go on and should exit. */
export class WorkerAuthError extends Error {
  override name = "WorkerAuthError";
  readonly fatal = true;
}

interface UserErrorShape {
  field: string[] | null;
  message: string;
  code: string;
}

export interface ApiWorkerBackendOptions {
  /** http://host:port/graphql */
  apiUrl: string;
  token: string;
  identity: WorkerIdentity;
  /** Local cache of downloaded artifacts. */
  cacheDir: string;
}

export class ApiWorkerBackend implements WorkerBackend {
  private readonly cache: LocalArtifactStore;
  /** Lease per job id (what the API gave at claim). */
  private readonly leases = new Map<string, string>();

  constructor(private readonly o: ApiWorkerBackendOptions) {
    this.cache = new LocalArtifactStore(o.cacheDir);
  }

  private async call<T>(query: string, variables: Record<string, unknown>): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.o.apiUrl, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.o.token}` },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw new Error(`cannot reach the API at ${this.o.apiUrl}: ${(error as Error).message}`);
    }
    const body = (await response.json().catch(() => null)) as {
      data?: Record<string, unknown>;
      errors?: { message: string; extensions?: { code?: string } }[];
    } | null;
    const [error] = body?.errors ?? [];
    if (error) {
      const code = error.extensions?.code;
      if (code === "UNAUTHENTICATED" || code === "FORBIDDEN") throw new WorkerAuthError(error.message);
      throw new Error(`API error${code ? ` (${code})` : ""}: ${error.message}`);
    }
    if (!body?.data)
      throw new Error(`the API at ${this.o.apiUrl} answered HTTP ${response.status} without data`);
    const payload = Object.values(body.data)[0] as T & { userErrors?: UserErrorShape[] };
    const [problem] = payload.userErrors ?? [];
    if (problem) {
      if (problem.code === "NOT_HELD") throw new JobNotHeldError(problem.message);
      if (problem.code === "QUOTA_EXCEEDED")
        throw Object.assign(new Error(problem.message), { code: ARTIFACT_QUOTA_EXCEEDED });
      throw new Error(`${(problem.field ?? []).join(".")}: ${problem.message}`);
    }
    return payload;
  }

  /** Check the token before taking work; returns the token's name and labels. */
  async connect(): Promise<{ name: string; labels: string[] }> {
    const data = await this.call<{ name: string; labels: string[] }>(
      "query CurrentWorkerToken { currentWorkerToken { name labels } }",
      {},
    );
    const missing = this.o.identity.labels.filter((l) => !data.labels.includes(l));
    if (missing.length) {
      throw new WorkerAuthError(
        `--labels ${missing.join(",")}: not granted to worker token "${data.name}" (it has: ${data.labels.join(", ") || "none"})`,
      );
    }
    return data;
  }

  private lease(h: Holder): string {
    const lease = this.leases.get(h.jobId);
    if (!lease) throw new JobNotHeldError(`this worker holds no lease on job ${h.jobId}`);
    return lease;
  }

  async claim(): Promise<ClaimedJob | null> {
    const { identity } = this.o;
    const payload = await this.call<{
      claimed: {
        job: {
          id: string;
          stage: ClaimedJob["stage"];
          run: { id: string };
          module: { index: number } | null;
        };
        lease: string;
        attempt: number;
        spec: unknown;
        resumeFrom: { id: string; sha256: string; step: number | null } | null;
      } | null;
    }>(
      `mutation ClaimJob($input: ClaimJobInput!) { claimJob(input: $input) {
        claimed { lease attempt spec job { id stage run { id } module { index } } resumeFrom { id sha256 step } }
        userErrors { field message code } } }`,
      {
        input: {
          workerId: identity.workerId,
          ...(identity.labels.length ? { labels: identity.labels } : {}),
          shards: identity.shards,
        },
      },
    );
    const c = payload.claimed;
    if (!c) return null;
    this.leases.set(c.job.id, c.lease);
    return {
      jobId: c.job.id, // the global ID: the worker only passes it back
      runId: c.job.run.id,
      stage: c.job.stage,
      ...(c.job.module ? { moduleIndex: c.job.module.index } : {}),
      attempt: c.attempt,
      spec: parseStoredJobSpec(c.spec, c.job.id), // from the network: parsed, not trusted
      ...(c.resumeFrom
        ? {
            resumeFrom: { artifactId: c.resumeFrom.id, sha256: c.resumeFrom.sha256, step: c.resumeFrom.step },
          }
        : {}),
    };
  }

  async heartbeat(h: Holder): Promise<HeartbeatAnswer> {
    try {
      const { command } = await this.call<{ command: string }>(
        "mutation HeartbeatJob($input: HeartbeatJobInput!) { heartbeatJob(input: $input) { command userErrors { field message code } } }",
        { input: { lease: this.lease(h) } },
      );
      return command.toLowerCase() as HeartbeatAnswer;
    } catch (error) {
      if (error instanceof JobNotHeldError) return "taken_over";
      throw error;
    }
  }

  async recordEvents(h: Holder, events: WorkerEvent[], batchKey: string): Promise<void> {
    await this.call(
      "mutation RecordJobEvents($input: RecordJobEventsInput!) { recordJobEvents(input: $input) { seqs userErrors { field message code } } }",
      { input: { lease: this.lease(h), events, batchKey } },
    );
  }

  async complete(h: Holder, result: JobResult, artifacts: ProducedArtifact[]): Promise<void> {
    await this.call(
      "mutation CompleteJob($input: CompleteJobInput!) { completeJob(input: $input) { job { id } userErrors { field message code } } }",
      { input: { lease: this.lease(h), result, artifacts } },
    );
    this.leases.delete(h.jobId);
  }

  async fail(h: Holder, message: string, permanent: boolean): Promise<{ willRetry: boolean }> {
    const payload = await this.call<{ willRetry: boolean }>(
      "mutation FailJob($input: FailJobInput!) { failJob(input: $input) { willRetry userErrors { field message code } } }",
      { input: { lease: this.lease(h), message, permanent } },
    );
    this.leases.delete(h.jobId);
    return payload;
  }

  private artifactUrl(sha256: string): URL {
    return new URL(`/artifacts/${sha256}`, this.o.apiUrl);
  }

  async putArtifact(path: string): Promise<StoredArtifact> {
    const sha256 = await sha256File(path);
    const sizeBytes = statSync(path).size;
    const response = await fetch(this.artifactUrl(sha256), {
      method: "PUT",
      headers: {
        authorization: `Bearer ${this.o.token}`,
        "content-type": "application/octet-stream",
        "content-length": String(sizeBytes),
      },
      body: Readable.toWeb(createReadStream(path)) as ReadableStream,
      duplex: "half",
    } as RequestInit);
    if (!response.ok) {
      const body = (await response.json().catch(() => ({}))) as { error?: string };
      const message = `uploading ${path} failed: HTTP ${response.status} ${body.error ?? ""}`.trim();
      if (response.status === 401 || response.status === 403) throw new WorkerAuthError(message);
      throw new Error(message);
    }
    return { sha256, sizeBytes };
  }

  async getArtifact(sha256: string): Promise<string> {
    if (await this.cache.has(sha256)) {
      try {
        return await this.cache.getFile(sha256); // hashed: a damaged copy is removed and fetched again
      } catch (error) {
        if (!(error instanceof ArtifactIntegrityError)) throw error;
      }
    }
    const response = await fetch(this.artifactUrl(sha256), {
      headers: { authorization: `Bearer ${this.o.token}` },
    });
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`downloading artifact ${sha256} failed: HTTP ${response.status}`);
    }
    // Its own temporary file, hashed on the way, renamed onto the address only if the bytes
    // match: jobs on this machine fetching the same meta weights at once each get the whole file.
    await this.cache.putStream(Readable.fromWeb(response.body as never), { sha256 });
    return this.cache.getFile(sha256);
  }
}
