/**
 * Carries out a state-machine transition (machine.ts) in ONE database transaction, under the
 * run row's lock: the caller's own writes (`before`: a job's artifacts and result), the states,
 * new job rows with their specs, the MetaModel row a pre-training produced, the queue messages
 * (pg-boss writes through the same transaction) and the run's events. Either all of it commits
 * or none does, so no crash between "job done" and "run advanced" can strand a run.
 */
import { randomUUID } from "node:crypto";
import type PgBoss from "pg-boss";
import type { VitConfig } from "../../engine/models/vit.ts";
import type { Prisma } from "../../generated/prisma/client.ts";
import { ArtifactKind, JobState, RunState } from "../../generated/prisma/enums.ts";
import { metaConfigFor } from "../../incubation/modules.ts";
import type { Db } from "../db/client.ts";
import {
  e2eSpec,
  finetuneSpec,
  modularSpec,
  pretrainSpec,
  type RunContext,
  type StoredJobSpec,
  targetConfig,
} from "../dispatch/plan.ts";
import { appendRunEventsInTx } from "../events/event-log.ts";
import type { Logger } from "../logger.ts";
import { metaModelColumns, metaModelConfig } from "../meta-model-source.ts";
import { recordJobChanges } from "../metrics/job-timings.ts";
import { placementOfJob, queueOfJob } from "../queue/placement.ts";
import { ensureTrainQueue, type TrainMessage } from "../queue/queue.ts";
import { runSplit } from "../run-split.ts";
import { type NewJob, type Occurrence, type RunSnapshot, type Transition, transition } from "./machine.ts";

type Tx = Prisma.TransactionClient;

export interface ApplyOptions {
  /** Writes that belong to the same transaction, made first (under the run's lock). */
  before?: (tx: Tx) => Promise<void>;
  /** What to tell the queue about the occurrence's job message: done, or failed (retry / dead letter). */
  message?: { queue: string; id: string; action: "complete" | "fail"; reason?: string };
}

/**
 * pg-boss runs its SQL through `db.executeSql`; this one runs it inside a Prisma transaction.
 * Plain objects go as JSON text (the SQL casts them); arrays stay arrays.
 */
function bossDb(tx: Tx) {
  return {
    executeSql: async (text: string, values: unknown[] = []) => ({
      rows: await tx.$queryRawUnsafe<unknown[]>(
        text,
        ...values.map((v) =>
          v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date)
            ? JSON.stringify(v)
            : v,
        ),
      ),
    }),
  };
}

/**
 * Every transaction that writes a run's rows takes the run row's lock first, then its module,
 * job and event rows: one order, so two writers (a state change and a worker's events) queue
 * instead of deadlocking.
 */
export async function lockRunRow(tx: Tx, runId: string): Promise<void> {
  await tx.$queryRaw`select id from "run" where id = ${runId}::uuid for update`;
}

export class StateWriter {
  constructor(
    private readonly db: Db,
    private readonly boss: PgBoss,
    private readonly logger: Logger,
  ) {}

  /** Apply `occurrence` to run `runId`; returns the transition (IllegalTransition when refused). */
  async apply(runId: string, occurrence: Occurrence, options: ApplyOptions = {}): Promise<Transition> {
    const done = await this.db.$transaction(
      async (tx) => {
        await lockRunRow(tx, runId);
        await options.before?.(tx);
        const ctx = await loadContext(tx, runId);
        const t = transition(ctx.snapshot, occurrence, randomUUID);
        const now = await this.write(tx, ctx, t);
        if (options.message) {
          const { queue, id, action, reason } = options.message;
          if (action === "complete") await this.boss.complete(queue, id, {}, { db: bossDb(tx) });
          else await this.boss.fail(queue, id, { reason: reason ?? "failed" }, { db: bossDb(tx) });
        }
        return { t, jobsBefore: ctx.jobRows, now };
      },
      { timeout: 30_000 },
    );
    // Committed: only now do its claims and ended attempts count (metrics/job-timings.ts).
    recordJobChanges(done.jobsBefore, done.t.jobs, done.now);
    return done.t;
  }

  /** Writes the transition; returns the database time it is stamped with. */
  private async write(tx: Tx, ctx: LoadedRun, t: Transition): Promise<Date> {
    // The database's clock (the stale sweep compares heartbeats with it); one instant for the whole change.
    const [{ now }] = await tx.$queryRaw<[{ now: Date }]>`select now() as now`;
    const { run } = ctx;
    if (t.run) {
      const terminal = t.run.state !== RunState.RUNNING && t.run.state !== RunState.QUEUED;
      const result = t.run.resultFromJob
        ? ((await tx.job.findUniqueOrThrow({ where: { id: t.run.resultFromJob } })).result ?? {})
        : undefined;
      await tx.run.update({
        where: { id: run.id },
        data: {
          state: t.run.state,
          error: t.run.error,
          finishedAt: terminal ? now : null,
          ...(t.run.state === RunState.RUNNING && !run.startedAt ? { startedAt: now } : {}),
          ...(result !== undefined ? { result: result as Prisma.InputJsonValue } : {}),
        },
      });
    }
    for (const m of t.modules) await tx.module.update({ where: { id: m.id }, data: { state: m.state } });
    for (const j of t.jobs) {
      const finished =
        j.state === JobState.SUCCEEDED || j.state === JobState.FAILED || j.state === JobState.CANCELLED;
      await tx.job.update({
        where: { id: j.id },
        data: {
          state: j.state,
          ...(j.error !== undefined ? { error: j.error } : {}),
          ...(j.state === JobState.RUNNING
            ? {
                attempts: j.attempt,
                workerId: j.workerId,
                startedAt: now,
                heartbeatAt: now,
                finishedAt: null,
              }
            : {}),
          ...(finished ? { finishedAt: now } : {}),
        },
      });
    }
    if (t.recordMetaModelFrom) await this.recordMetaModel(tx, ctx, t.recordMetaModelFrom);
    for (const job of t.create) await this.insertJob(tx, ctx, job);
    for (const jobId of t.enqueue) await this.enqueue(tx, ctx, jobId);
    if (t.run?.state === RunState.CANCELLED) await this.cancelQueued(tx, ctx);
    await appendRunEventsInTx(tx, run.id, t.events);
    return now;
  }

  private async recordMetaModel(tx: Tx, ctx: LoadedRun, jobId: string): Promise<void> {
    const weights = await weightsOf(tx, jobId);
    await tx.metaModel.create({
      data: {
        name: `meta-${ctx.run.id.slice(0, 8)}`,
        ...metaModelColumns(
          metaConfigFor(targetConfig(ctx.architecture), runSplit(ctx.run, ctx.architecture).length),
          {
            kind: "pretrain-run",
            runId: ctx.run.id,
          },
        ),
        datasetId: ctx.run.datasetId,
        projectId: ctx.run.projectId,
        sourceRunId: ctx.run.id,
        checkpointId: weights.id,
      },
    });
  }

  /** The engine spec of a new job, from the run's rows and what earlier stages produced. */
  private async specOf(tx: Tx, ctx: LoadedRun, job: NewJob): Promise<StoredJobSpec> {
    switch (job.stage) {
      case "PRETRAIN":
        return pretrainSpec(ctx);
      case "E2E":
        return e2eSpec(ctx);
      case "MODULAR": {
        const meta = await metaWeightsOf(tx, ctx);
        return modularSpec(ctx, job.moduleIndex ?? 0, meta.sha256, meta.config);
      }
      case "FINETUNE": {
        const sources = [];
        for (const m of ctx.modules) {
          // A reused module points at the earlier run's weights: assemble from those bytes.
          if (m.reusedWeightsId) {
            const reused = await tx.artifact.findUniqueOrThrow({ where: { id: m.reusedWeightsId } });
            sources.push({ moduleIndex: m.index, sha256: reused.sha256 });
            continue;
          }
          const succeeded = await tx.job.findFirst({
            where: { moduleId: m.id, stage: "MODULAR", state: "SUCCEEDED" },
            orderBy: { createdAt: "desc" },
          });
          if (!succeeded) throw new Error(`module ${m.index} has no succeeded job to assemble from`);
          sources.push({ moduleIndex: m.index, sha256: (await weightsOf(tx, succeeded.id)).sha256 });
        }
        return finetuneSpec(ctx, sources);
      }
      default:
        throw new Error(`no job spec for stage ${job.stage}`);
    }
  }

  private async insertJob(tx: Tx, ctx: LoadedRun, job: NewJob): Promise<void> {
    const spec = await this.specOf(tx, ctx, job);
    const placement = placementOfJob(ctx.run.placement, spec);
    await tx.job.create({
      data: {
        id: job.id,
        runId: ctx.run.id,
        stage: job.stage,
        spec: spec as unknown as Prisma.InputJsonValue,
        labels: placement.labels,
        shard: placement.shard ?? null,
        ...(job.moduleId ? { moduleId: job.moduleId } : {}),
      },
    });
  }

  /** Send the job's queue message in this transaction (its queue is created first, outside it). */
  private async enqueue(tx: Tx, ctx: LoadedRun, jobId: string): Promise<void> {
    const job = await tx.job.findUniqueOrThrow({ where: { id: jobId } });
    const queue = queueOfJob(job);
    await ensureTrainQueue(this.boss, queue);
    const message = await this.boss.send(queue, { jobId } satisfies TrainMessage, {
      singletonKey: job.moduleId ? `module:${job.moduleId}` : `job:${job.id}`,
      priority: ctx.run.priority,
      db: bossDb(tx),
    });
    if (!message)
      throw new Error(`could not enqueue job ${jobId}: an identical singleton job is already queued`);
    await tx.job.update({ where: { id: jobId }, data: { queueJobId: message } });
  }

  /** Cancelled jobs that were still waiting leave the queue; running ones hear it at their next heartbeat. */
  private async cancelQueued(tx: Tx, ctx: LoadedRun): Promise<void> {
    for (const job of ctx.jobRows) {
      if (job.state !== JobState.QUEUED || !job.queueJobId) continue;
      await this.boss.cancel(queueOfJob(job), job.queueJobId, { db: bossDb(tx) }).catch((error: unknown) => {
        this.logger.warn({ err: error, jobId: job.id }, "could not cancel a queue message");
      });
    }
  }
}

interface LoadedRun extends RunContext {
  modules: { id: string; index: number; reusedWeightsId: string | null }[];
  jobRows: Prisma.JobGetPayload<object>[];
  snapshot: RunSnapshot;
}

async function loadContext(tx: Tx, runId: string): Promise<LoadedRun> {
  const run = await tx.run.findUniqueOrThrow({
    where: { id: runId },
    include: { architecture: true, dataset: true },
  });
  const modules = await tx.module.findMany({ where: { runId }, orderBy: { index: "asc" } });
  const jobRows = await tx.job.findMany({ where: { runId }, orderBy: [{ createdAt: "asc" }, { id: "asc" }] });
  return {
    run,
    architecture: run.architecture,
    dataset: run.dataset,
    modules,
    jobRows,
    snapshot: {
      run: { kind: run.kind, state: run.state, metaModelGiven: run.metaModelId !== null },
      modules: modules.map((m) => ({
        id: m.id,
        index: m.index,
        state: m.state,
        reused: m.reusedFromId !== null,
      })),
      jobs: jobRows.map((j) => ({ id: j.id, stage: j.stage, state: j.state, moduleId: j.moduleId })),
    },
  };
}

async function weightsOf(tx: Tx, jobId: string) {
  const weights = await tx.artifact.findFirst({
    where: { jobId, kind: ArtifactKind.WEIGHTS },
    orderBy: { createdAt: "desc" },
  });
  if (!weights) throw new Error(`job ${jobId} succeeded without a weights artifact`);
  return weights;
}

/** The meta model that incubates the run's modules: the one given at startRun, or the one it pre-trained. */
async function metaWeightsOf(tx: Tx, ctx: LoadedRun): Promise<{ sha256: string; config?: VitConfig }> {
  if (ctx.run.metaModelId) {
    const meta = await tx.metaModel.findUniqueOrThrow({
      where: { id: ctx.run.metaModelId },
      include: { checkpoint: true },
    });
    if (!meta.checkpoint) throw new Error(`meta model ${meta.name} has no weights artifact`);
    return { sha256: meta.checkpoint.sha256, config: metaModelConfig(meta) };
  }
  const pretrain = ctx.jobRows.findLast((j) => j.stage === "PRETRAIN" && j.state === JobState.SUCCEEDED);
  // The PRETRAIN job may have succeeded in this very transaction: look it up afresh.
  const pt =
    pretrain ??
    (await tx.job.findFirst({ where: { runId: ctx.run.id, stage: "PRETRAIN", state: "SUCCEEDED" } }));
  if (!pt) throw new Error("the run's modules need a meta model, and its pre-training has not succeeded");
  return { sha256: (await weightsOf(tx, pt.id)).sha256 };
}
