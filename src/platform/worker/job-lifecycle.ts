/**
 * A job's life as its worker sees it: claim → heartbeat / events → complete or fail. Workers
 * that reach the database call it directly (DbWorkerBackend); workers elsewhere call it through
 * the GraphQL API (resolvers/worker-jobs.ts), so both behave the same.
 *
 * Every call after the claim names a *holder* — the job, the worker id and the attempt it
 * claimed. A job that was handed to another worker since (stale, retried) or cancelled answers
 * so, and the old holder can no longer write its state: a slow worker cannot finish a job twice.
 * State changes go through the state machine (src/platform/state/), each in one transaction.
 */
import type PgBoss from "pg-boss";
import type { Prisma } from "../../generated/prisma/client.ts";
import { ArtifactKind, JobState, type StageKind } from "../../generated/prisma/enums.ts";
import type { JobResult } from "../../incubation/job.ts";
import { checkArtifactQuota } from "../artifacts/quota.ts";
import type { ArtifactStore } from "../artifacts/store.ts";
import type { Db } from "../db/client.ts";
import { isUniqueViolation } from "../db/unique-violation.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import type { StoredJobSpec } from "../dispatch/plan.ts";
import { parseStoredJobSpec } from "../dispatch/stored-spec.ts";
import { appendRunEventsInTx } from "../events/event-log.ts";
import { type NewRunEvent, RunEventType } from "../events/run-event.ts";
import { DEFAULT_ARTIFACT_QUOTA_BYTES } from "../limits.ts";
import type { Logger } from "../logger.ts";
import { mayTake, placementOfQueue, queueOfJob, type WorkerPlacement } from "../queue/placement.ts";
import { type TrainMessage, trainQueueNames } from "../queue/queue.ts";
import { IllegalTransition } from "../state/machine.ts";
import type { WorkerEvent } from "./worker-event.ts";

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

export type { WorkerEvent } from "./worker-event.ts";

/** Kinds of file a finished job reports (checkpoints travel as events; meta weights are registered). */
export const PRODUCED_ARTIFACT_KINDS = [
  ArtifactKind.WEIGHTS,
  ArtifactKind.FINAL_WEIGHTS,
  ArtifactKind.FINAL_MODEL_ONNX,
  ArtifactKind.ASSEMBLED_MODEL,
] as const;

/** A file a finished job produced (already in the artifact store). */
export interface ProducedArtifact {
  kind: (typeof PRODUCED_ARTIFACT_KINDS)[number];
  sha256: string;
  sizeBytes: number;
  metadata?: Record<string, unknown>;
}

/** The artifact row of a file a job reported (already in the store): in the run's project. */
function artifactRow(
  job: { id: string; runId: string; run: { projectId: string } },
  a: {
    kind: ArtifactKind;
    sha256: string;
    sizeBytes: number;
    step?: number;
    metadata?: Record<string, unknown>;
  },
) {
  return {
    runId: job.runId,
    projectId: job.run.projectId,
    jobId: job.id,
    kind: a.kind,
    sha256: a.sha256,
    sizeBytes: BigInt(a.sizeBytes),
    ...(a.step !== undefined ? { step: a.step } : {}),
    metadata: (a.metadata ?? {}) as Prisma.InputJsonValue,
  };
}

/** The caller no longer holds the job (cancelled, or handed to another worker). */
export class JobNotHeldError extends Error {
  override name = "JobNotHeldError";
}

export interface JobLifecycleOptions {
  /** Artifact bytes of a project without its own quota (ARTIFACT_QUOTA_BYTES). */
  artifactQuotaBytes?: number;
}

/** Seqs a batch of events was recorded as; `repeated`: the batch key was seen before (a retry). */
export interface RecordedBatch {
  seqs: number[];
  repeated: boolean;
}

export class JobLifecycle {
  private readonly quotaBytes: number;

  constructor(
    private readonly db: Db,
    private readonly boss: PgBoss,
    private readonly dispatcher: Dispatcher,
    private readonly store: ArtifactStore,
    private readonly logger: Logger,
    options: JobLifecycleOptions = {},
  ) {
    this.quotaBytes = options.artifactQuotaBytes ?? DEFAULT_ARTIFACT_QUOTA_BYTES;
  }

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
    const job = await this.db.job.findUnique({ where: { id: jobId }, include: { module: true } });
    if (!job) {
      await this.boss.complete(queue, messageId); // a message for a job that no longer exists
      return null;
    }
    try {
      await this.dispatcher.state.apply(
        job.runId,
        {
          type: "JOB_CLAIMED",
          jobId,
          workerId,
          attempt: job.attempts + 1,
        },
        {
          before: async (tx) => {
            await tx.job.update({ where: { id: jobId }, data: { queueJobId: messageId } });
          },
        },
      );
    } catch (error) {
      if (!(error instanceof IllegalTransition)) throw error;
      // Finished, cancelled, or its run ended: nothing left to do for this message.
      await this.boss.complete(queue, messageId);
      return null;
    }
    const checkpoint = await this.db.artifact.findFirst({
      where: { jobId, kind: ArtifactKind.CHECKPOINT },
      orderBy: [{ step: "desc" }, { createdAt: "desc" }],
    });
    return {
      jobId,
      runId: job.runId,
      stage: job.stage,
      ...(job.module ? { moduleIndex: job.module.index } : {}),
      attempt: job.attempts + 1,
      spec: parseStoredJobSpec(job.spec, job.id),
      ...(checkpoint
        ? { resumeFrom: { artifactId: checkpoint.id, sha256: checkpoint.sha256, step: checkpoint.step } }
        : {}),
    };
  }

  /** The job row when `h` still holds it (in one of `states`); JobNotHeldError otherwise. */
  private async held(h: Holder, states: readonly string[] = ["RUNNING"]) {
    const job = await this.db.job.findUnique({
      where: { id: h.jobId },
      include: { module: true, run: { select: { projectId: true } } },
    });
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
    // The database's clock, as the stale sweep's cutoff is: workers' clocks may disagree.
    const beat = await this.db.$executeRaw`
      update "job" set "heartbeat_at" = now()
      where "id" = ${h.jobId}::uuid and "worker_id" = ${h.workerId} and "attempts" = ${h.attempt}
        and "state" = 'RUNNING'`;
    if (beat === 1) return "continue";
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
   * artifacts (within the project's artifact quota: QuotaExceededError otherwise) and the
   * module's step/loss. A cancelled job may still report its last checkpoint.
   *
   * `batchKey` (the worker's name for the batch, unique per job) makes the call idempotent: a
   * batch sent again — an API worker retrying after a lost answer — is not appended twice; the
   * answer is the seqs it was recorded as the first time.
   */
  async recordEvents(h: Holder, events: WorkerEvent[], batchKey?: string): Promise<RecordedBatch> {
    const job = await this.held(h, ["RUNNING", "CANCELLED"]);
    if (batchKey !== undefined) {
      const earlier = await this.recordedBatch(job.id, batchKey);
      if (earlier) return earlier;
    }
    const stage = job.stage;
    const moduleIndex = job.module?.index ?? null;
    const rows: NewRunEvent[] = [];
    let progress: Extract<WorkerEvent, { type: "progress" }> | undefined;
    const checkpoints: Extract<WorkerEvent, { type: "checkpoint" }>[] = [];
    for (const event of events) {
      switch (event.type) {
        case "start":
          rows.push({
            type: RunEventType.JOB_STARTED,
            moduleIndex,
            stage,
            totalSteps: event.totalSteps,
            startStep: event.startStep,
            trainImages: event.trainImages,
            data: event.data,
          });
          break;
        case "progress": {
          const { type: _, ...fields } = event;
          progress = event;
          rows.push({ type: RunEventType.PROGRESS, moduleIndex, stage, ...fields });
          break;
        }
        case "checkpoint":
          await this.requireStored(event.sha256, ArtifactKind.CHECKPOINT, event.sizeBytes);
          checkpoints.push(event);
          rows.push({
            type: RunEventType.ARTIFACT,
            moduleIndex,
            kind: ArtifactKind.CHECKPOINT,
            step: event.step,
            sha256: event.sha256,
          });
          break;
        case "eval":
          rows.push({
            type: RunEventType.METRIC,
            moduleIndex,
            stage,
            accuracy: event.accuracy,
            loss: event.loss,
            images: event.images,
          });
          break;
        case "evalPoint": {
          const { type: _, ...fields } = event;
          rows.push({ type: RunEventType.EVAL_POINT, moduleIndex, stage, ...fields });
          break;
        }
      }
    }
    try {
      return await this.db.$transaction(async (tx) => {
        // The run's row lock first (appending takes it), then the project's (the quota): the
        // order every writer of artifacts keeps (artifacts/quota.ts).
        const seqs = await appendRunEventsInTx(tx, job.runId, rows);
        await checkArtifactQuota(tx, job.run.projectId, checkpoints, this.quotaBytes);
        for (const c of checkpoints)
          await tx.artifact.create({ data: artifactRow(job, { kind: ArtifactKind.CHECKPOINT, ...c }) });
        if (progress && job.moduleId) {
          await tx.module.update({
            where: { id: job.moduleId },
            data: { step: progress.step, totalSteps: progress.totalSteps, loss: progress.loss },
          });
        }
        // Same transaction: the batch is recorded exactly when its events are.
        if (batchKey !== undefined)
          await tx.jobEventBatch.create({ data: { jobId: job.id, batchKey, seqs } });
        return { seqs, repeated: false };
      });
    } catch (error) {
      // The same batch, sent again while the first copy was still being written, lost the race
      // on (job, batchKey): the first copy's seqs are the answer.
      const earlier =
        batchKey !== undefined && isUniqueViolation(error) && (await this.recordedBatch(job.id, batchKey));
      if (earlier) return earlier;
      throw error;
    }
  }

  private async recordedBatch(jobId: string, batchKey: string): Promise<RecordedBatch | null> {
    const batch = await this.db.jobEventBatch.findUnique({ where: { jobId_batchKey: { jobId, batchKey } } });
    return batch ? { seqs: batch.seqs, repeated: true } : null;
  }

  /** An artifact a worker reports must be in the store already (it uploads first). */
  private async requireStored(sha256: string, kind: ArtifactKind, sizeBytes: number): Promise<void> {
    if (!(await this.store.has(sha256, { sizeBytes })))
      // the size the row will record: a stat
      throw new Error(`artifact ${sha256} (${kind}) is not in the store; upload it first`);
  }

  /**
   * The job succeeded: its artifacts, its result, its state and the run's next step (or end)
   * are written in one transaction.
   */
  async complete(h: Holder, result: JobResult, artifacts: ProducedArtifact[]): Promise<void> {
    const job = await this.held(h);
    for (const a of artifacts) await this.requireStored(a.sha256, a.kind, a.sizeBytes);
    const sha = (kind: ArtifactKind) => artifacts.find((a) => a.kind === kind)?.sha256;
    const stored: Record<string, unknown> = { ...result };
    if (sha(ArtifactKind.FINAL_MODEL_ONNX)) stored.onnxSha256 = sha(ArtifactKind.FINAL_MODEL_ONNX);
    if (sha(ArtifactKind.FINAL_WEIGHTS)) stored.weightsSha256 = sha(ArtifactKind.FINAL_WEIGHTS);
    await this.dispatcher.state.apply(
      job.runId,
      { type: "JOB_SUCCEEDED", jobId: job.id, accuracy: result.evalAccuracy ?? null },
      {
        before: async (tx) => {
          await this.stillHeld(tx, h);
          // Under the run's lock (apply took it); the project's lock comes second, as everywhere.
          await checkArtifactQuota(tx, job.run.projectId, artifacts, this.quotaBytes);
          for (const a of artifacts) await tx.artifact.create({ data: artifactRow(job, a) });
          await tx.job.update({ where: { id: job.id }, data: { result: stored as Prisma.InputJsonValue } });
        },
        ...(job.queueJobId
          ? { message: { queue: queueOfJob(job), id: job.queueJobId, action: "complete" as const } }
          : {}),
      },
    );
  }

  /** Under the run's lock: the holder still holds the job (a sweep may have handed it on meanwhile). */
  private async stillHeld(tx: Prisma.TransactionClient, h: Holder): Promise<void> {
    const now = await tx.job.findUniqueOrThrow({ where: { id: h.jobId } });
    if (now.workerId !== h.workerId || now.attempts !== h.attempt || now.state !== JobState.RUNNING)
      throw new JobNotHeldError(`job ${h.jobId} was taken over or is ${now.state}`);
  }

  /**
   * The job failed. `permanent` (NaN loss, bad data: exit code 4) fails the module and the run
   * at once; otherwise pg-boss retries it (from its newest checkpoint) until its retries are
   * spent, and the last failure fails the run (its message goes to the dead-letter queue).
   */
  async fail(h: Holder, message: string, permanent: boolean): Promise<{ willRetry: boolean }> {
    const job = await this.held(h);
    const retry = !permanent && (await this.dispatcher.retriesLeft(job));
    this.logger.warn({ jobId: job.id, workerId: h.workerId, message, retry }, "job failed");
    await this.dispatcher.state.apply(
      job.runId,
      { type: "JOB_FAILED", jobId: job.id, reason: message, retry },
      {
        before: (tx) => this.stillHeld(tx, h),
        ...(job.queueJobId
          ? {
              message: {
                queue: queueOfJob(job),
                id: job.queueJobId,
                // A permanent failure is done (a retry would repeat it); otherwise pg-boss
                // schedules the retry, or moves the message to the dead-letter queue.
                action: permanent ? ("complete" as const) : ("fail" as const),
                reason: message,
              },
            }
          : {}),
      },
    );
    return { willRetry: retry };
  }
}
