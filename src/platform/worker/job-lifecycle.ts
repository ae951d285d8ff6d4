/**
 * The job state machine, in one place: claim → heartbeat / events → complete or fail. Workers
 * that reach the database call it directly (DbWorkerBackend); workers elsewhere call it through
 * the GraphQL API (resolvers/worker-jobs.ts), so both behave the same.
 *
 * Every call after the claim names a *holder* — the job, the worker id and the attempt it
 * claimed. A job that was handed to another worker since (stale, retried) or cancelled answers
 * so, and the old holder can no longer write its state: a slow worker cannot finish a job twice.
 */
import type PgBoss from "pg-boss";
import type { Prisma, StageKind } from "../../generated/prisma/client.ts";
import type { JobEvent, JobResult } from "../../incubation/job.ts";
import type { ArtifactStore } from "../artifacts/store.ts";
import type { Db } from "../db/client.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { StoredJobSpec } from "../dispatch/plan.ts";
import { appendRunEvents, type NewRunEvent } from "../events/event-log.ts";
import type { Logger } from "../logger.ts";
import { mayTake, placementOfQueue, queueOfJob, type WorkerPlacement } from "../queue/placement.ts";
import { type TrainMessage, trainQueueNames } from "../queue/queue.ts";

export interface WorkerIdentity extends WorkerPlacement {
  workerId: string;
}

/** Who holds a job: the worker that claimed it, and which attempt. */
export interface Holder {
  jobId: string;
  workerId: string;
  attempt: number;
}

export interface ClaimedJob {
  jobId: string;
  runId: string;
  stage: StageKind;
  moduleIndex?: number;
  attempt: number;
  spec: StoredJobSpec;
  /** The job's newest checkpoint, to resume from (a retry). */
  resumeFrom?: { artifactId: string; sha256: string; step: number | null };
}

/** What a heartbeat tells the worker: keep going, stop (cancelled), or drop it (taken over). */
export type HeartbeatAnswer = "continue" | "cancel" | "taken_over";

/** A job process event as it travels to the platform: files are already in the artifact store. */
export type WorkerEvent =
  | Exclude<JobEvent, { type: "checkpoint" } | { type: "done" }>
  | { type: "checkpoint"; step: number; sha256: string; sizeBytes: number };

export const WORKER_EVENT_TYPES = ["start", "progress", "eval", "checkpoint"] as const;

/** A file a finished job produced (already in the artifact store). */
export interface ProducedArtifact {
  kind: "weights" | "final-weights" | "final-model-onnx" | "assembled-model";
  sha256: string;
  sizeBytes: number;
  metadata?: Record<string, unknown>;
}

export const PRODUCED_ARTIFACT_KINDS = ["weights", "final-weights", "final-model-onnx", "assembled-model"];

/** The caller no longer holds the job (cancelled, or handed to another worker). */
export class JobNotHeldError extends Error {
  override name = "JobNotHeldError";
}

export class JobLifecycle {
  constructor(
    private readonly db: Db,
    private readonly boss: PgBoss,
    private readonly dispatcher: Dispatcher,
    private readonly store: ArtifactStore,
    private readonly logger: Logger,
  ) {}

  /** Claim the next job this worker may take (placement.ts), or null when there is none. */
  async claimNext(worker: WorkerIdentity): Promise<ClaimedJob | null> {
    const queues = (await trainQueueNames(this.boss)).filter((name) => {
      const placement = placementOfQueue(name);
      return placement !== null && mayTake(worker, placement);
    });
    for (const queue of queues) {
      for (;;) {
        const [message] = await this.boss.fetch<TrainMessage>(queue, { batchSize: 1 });
        if (!message) break;
        const claimed = await this.startAttempt(queue, message.id, message.data.jobId, worker.workerId);
        if (claimed) return claimed;
      }
    }
    return null;
  }

  private async startAttempt(
    queue: string,
    messageId: string,
    jobId: string,
    workerId: string,
  ): Promise<ClaimedJob | null> {
    const { db } = this;
    const job = await db.job.findUnique({ where: { id: jobId }, include: { run: true, module: true } });
    if (!job || job.state === "SUCCEEDED" || job.state === "CANCELLED" || job.run.state === "CANCELLED") {
      await this.boss.complete(queue, messageId); // nothing left to do for this message
      return null;
    }
    const moduleIndex = job.module?.index;
    const scope = moduleIndex !== undefined ? { moduleIndex } : {};
    const now = new Date();
    const updated = await db.job.update({
      where: { id: jobId },
      data: {
        state: "RUNNING",
        attempts: { increment: 1 },
        workerId,
        queueJobId: messageId,
        startedAt: now,
        heartbeatAt: now,
        error: null,
      },
    });
    if (job.moduleId) await db.module.update({ where: { id: job.moduleId }, data: { state: "RUNNING" } });
    await appendRunEvents(db, job.runId, [
      {
        type: "STATE",
        ...scope,
        payload: { scope: "job", stage: job.stage, state: "RUNNING", attempt: updated.attempts, workerId },
      },
    ]);
    const checkpoint = await db.artifact.findFirst({
      where: { jobId, kind: "checkpoint" },
      orderBy: [{ step: "desc" }, { createdAt: "desc" }],
    });
    return {
      jobId,
      runId: job.runId,
      stage: job.stage,
      ...scope,
      attempt: updated.attempts,
      spec: job.spec as unknown as StoredJobSpec,
      ...(checkpoint
        ? { resumeFrom: { artifactId: checkpoint.id, sha256: checkpoint.sha256, step: checkpoint.step } }
        : {}),
    };
  }

  /** The job row when `h` still holds it (in one of `states`); JobNotHeldError otherwise. */
  private async held(h: Holder, states: readonly string[] = ["RUNNING"]) {
    const job = await this.db.job.findUnique({ where: { id: h.jobId }, include: { module: true } });
    if (!job) throw new JobNotHeldError(`no job ${h.jobId}`);
    if (job.workerId !== h.workerId || job.attempts !== h.attempt) {
      throw new JobNotHeldError(
        `job ${h.jobId} was taken over: attempt ${job.attempts} is held by ${job.workerId ?? "nobody"}, not attempt ${h.attempt} by ${h.workerId}`,
      );
    }
    if (!states.includes(job.state)) throw new JobNotHeldError(`job ${h.jobId} is ${job.state}`);
    return job;
  }

  async heartbeat(h: Holder): Promise<HeartbeatAnswer> {
    const beat = await this.db.job.updateMany({
      where: { id: h.jobId, workerId: h.workerId, attempts: h.attempt, state: "RUNNING" },
      data: { heartbeatAt: new Date() },
    });
    if (beat.count === 1) return "continue";
    const job = await this.db.job.findUnique({ where: { id: h.jobId } });
    if (job?.state === "CANCELLED" && job.workerId === h.workerId && job.attempts === h.attempt) {
      // The worker stops the job now; its queue message is done (no retry of a cancelled job).
      if (job.queueJobId) await this.boss.complete(queueOfJob(job), job.queueJobId).catch(() => {});
      return "cancel";
    }
    return "taken_over";
  }

  /**
   * Append the job's events to the run's log in one transaction (dense seq), record checkpoint
   * artifacts and the module's step/loss. A cancelled job may still report its last checkpoint.
   */
  async recordEvents(h: Holder, events: WorkerEvent[]): Promise<number[]> {
    const job = await this.held(h, ["RUNNING", "CANCELLED"]);
    const spec = job.spec as unknown as StoredJobSpec;
    const scope = job.module ? { moduleIndex: job.module.index } : {};
    const rows: NewRunEvent[] = [];
    let progress: Extract<WorkerEvent, { type: "progress" }> | undefined;
    for (const event of events) {
      if (event.type === "progress") {
        progress = event;
        rows.push({ type: "PROGRESS", ...scope, payload: { ...event, stage: spec.phase } });
      } else if (event.type === "checkpoint") {
        await this.recordArtifact(job.runId, job.id, {
          kind: "checkpoint",
          sha256: event.sha256,
          sizeBytes: event.sizeBytes,
          step: event.step,
        });
        rows.push({
          type: "ARTIFACT",
          ...scope,
          payload: { kind: "checkpoint", step: event.step, sha256: event.sha256 },
        });
      } else if (event.type === "eval") {
        rows.push({ type: "METRIC", ...scope, payload: { ...event, stage: spec.phase } });
      } else {
        rows.push({ type: "LOG", ...scope, payload: { ...event, stage: spec.phase } });
      }
    }
    if (progress && job.moduleId) {
      await this.db.module.update({
        where: { id: job.moduleId },
        data: { step: progress.step, totalSteps: progress.totalSteps, loss: progress.loss },
      });
    }
    return appendRunEvents(this.db, job.runId, rows);
  }

  private async recordArtifact(
    runId: string,
    jobId: string,
    a: { kind: string; sha256: string; sizeBytes: number; step?: number; metadata?: Record<string, unknown> },
  ) {
    if (!(await this.store.has(a.sha256, { sizeBytes: a.sizeBytes }))) {
      throw new Error(`artifact ${a.sha256} (${a.kind}) is not in the store; upload it first`);
    }
    return this.db.artifact.create({
      data: {
        runId,
        jobId,
        kind: a.kind,
        sha256: a.sha256,
        sizeBytes: BigInt(a.sizeBytes),
        ...(a.step !== undefined ? { step: a.step } : {}),
        metadata: (a.metadata ?? {}) as Prisma.InputJsonValue,
      },
    });
  }

  /** The job succeeded: record what it produced, mark it, and move the run on. */
  async complete(h: Holder, result: JobResult, artifacts: ProducedArtifact[]): Promise<void> {
    const job = await this.held(h);
    const spec = job.spec as unknown as StoredJobSpec;
    for (const a of artifacts) await this.recordArtifact(job.runId, job.id, a);
    const sha = (kind: ProducedArtifact["kind"]) => artifacts.find((a) => a.kind === kind)?.sha256;
    const stored: Record<string, unknown> = { ...result };
    if (sha("final-model-onnx")) stored.onnxSha256 = sha("final-model-onnx");
    if (sha("final-weights")) stored.weightsSha256 = sha("final-weights");
    await this.db.job.update({
      where: { id: job.id },
      data: { state: "SUCCEEDED", finishedAt: new Date(), result: stored as Prisma.InputJsonValue },
    });
    if (job.moduleId)
      await this.db.module.update({ where: { id: job.moduleId }, data: { state: "SUCCEEDED" } });
    await appendRunEvents(this.db, job.runId, [
      {
        type: "STATE",
        ...(job.module ? { moduleIndex: job.module.index } : {}),
        payload: {
          scope: "job",
          stage: spec.phase,
          state: "SUCCEEDED",
          result: stored,
        } as Prisma.InputJsonValue,
      },
    ]);
    if (job.queueJobId) await this.boss.complete(queueOfJob(job), job.queueJobId);
    await this.dispatcher.advance(job.runId);
  }

  /**
   * The job failed. `permanent` (NaN loss, bad data: exit code 4) fails the module and the run
   * at once; otherwise pg-boss retries it (from its newest checkpoint) until its retries are
   * spent, and the last failure fails the run.
   */
  async fail(h: Holder, message: string, permanent: boolean): Promise<{ willRetry: boolean }> {
    const job = await this.held(h);
    const queue = queueOfJob(job);
    const queued = job.queueJobId ? await this.boss.getJobById(queue, job.queueJobId) : null;
    const lastAttempt = !queued || queued.retryCount >= queued.retryLimit;
    const final = permanent || lastAttempt;
    this.logger.warn({ jobId: job.id, workerId: h.workerId, message, final }, "job failed");
    await this.db.job.update({
      where: { id: job.id },
      data: { state: final ? "FAILED" : "QUEUED", error: message },
    });
    const scope = job.module ? { moduleIndex: job.module.index } : {};
    await appendRunEvents(this.db, job.runId, [
      { type: "LOG", ...scope, payload: { level: "error", stage: job.stage, message, willRetry: !final } },
    ]);
    if (final) {
      if (job.moduleId)
        await this.db.module.update({ where: { id: job.moduleId }, data: { state: "FAILED" } });
      const what = job.module ? `module ${job.module.index}` : job.stage.toLowerCase();
      await this.dispatcher.failRun(job.runId, new Error(`${what} failed: ${message}`));
    }
    if (job.queueJobId) {
      // A permanent failure is done (a retry would repeat it); otherwise pg-boss schedules the
      // retry, or moves the message to the dead-letter queue after the last attempt.
      if (permanent) await this.boss.complete(queue, job.queueJobId);
      else await this.boss.fail(queue, job.queueJobId, { reason: message });
    }
    return { willRetry: !final };
  }
}
