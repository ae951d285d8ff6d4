/**
 * Run orchestration over the queue: which jobs a run needs, in which order, and what happens
 * when one finishes, fails, goes silent or is cancelled.
 *
 *   INCUBATION    PRETRAIN (unless a meta model is given) → K × MODULAR (parallel) → FINETUNE
 *                 (assembles stage i from module i first, then fine-tunes, evaluates, exports)
 *   E2E           E2E (trains, evaluates, exports)
 *   META_PRETRAIN PRETRAIN → a MetaModel row
 *
 * `advance` is the only place that moves a run forward; it locks the run row, so two workers
 * finishing the last two modules at once start exactly one fine-tuning job.
 */
import type PgBoss from "pg-boss";
import type { VitConfig } from "../../engine/models/vit.ts";
import type { Prisma, StageKind } from "../../generated/prisma/client.ts";
import { metaConfigFor } from "../../incubation/modules.ts";
import type { Db } from "../db/client.ts";
import { appendRunEvents } from "../events/event-log.ts";
import type { Logger } from "../logger.ts";
import { metaModelColumns } from "../meta-model-source.ts";
import { placementOfJob, queueOfJob } from "../queue/placement.ts";
import { enqueueJob } from "../queue/queue.ts";
import {
  e2eSpec,
  finetuneSpec,
  metaModelConfig,
  modularSpec,
  pretrainSpec,
  type RunContext,
  type StoredJobSpec,
  targetConfig,
} from "./plan.ts";

interface PendingJob {
  id: string;
  /** The pg-boss queue of its placement (placement.ts). */
  queue: string;
  stage: StageKind;
  runId: string;
  priority: number;
  moduleId: string | undefined;
  moduleIndex: number | undefined;
}

export class Dispatcher {
  constructor(
    private readonly db: Db,
    private readonly boss: PgBoss,
    private readonly logger: Logger,
  ) {}

  private async context(runId: string): Promise<RunContext> {
    const run = await this.db.run.findUniqueOrThrow({
      where: { id: runId },
      include: { architecture: true, dataset: true },
    });
    return { run, architecture: run.architecture, dataset: run.dataset };
  }

  /** Insert a job row (inside the caller's transaction when given); enqueue it with `enqueue`. */
  private async insertJob(
    tx: Prisma.TransactionClient | Db,
    ctx: RunContext,
    stage: StageKind,
    spec: StoredJobSpec,
    moduleId?: string,
  ): Promise<PendingJob> {
    const placement = placementOfJob(ctx.run.placement, spec);
    const job = await tx.job.create({
      data: {
        runId: ctx.run.id,
        stage,
        spec: spec as unknown as Prisma.InputJsonValue,
        labels: placement.labels,
        shard: placement.shard ?? null,
        ...(moduleId ? { moduleId } : {}),
      },
    });
    return {
      id: job.id,
      queue: queueOfJob(job),
      stage,
      runId: ctx.run.id,
      priority: ctx.run.priority,
      moduleId,
      moduleIndex: spec.moduleIndex,
    };
  }

  private async enqueue(job: PendingJob): Promise<void> {
    const queueJobId = await enqueueJob(this.boss, job.queue, job.id, {
      singletonKey: job.moduleId ? `module:${job.moduleId}` : `job:${job.id}`,
      priority: job.priority,
    });
    await this.db.job.update({ where: { id: job.id }, data: { queueJobId } });
    if (job.moduleId) await this.db.module.update({ where: { id: job.moduleId }, data: { state: "QUEUED" } });
    await appendRunEvents(this.db, job.runId, [
      {
        type: "STATE",
        ...(job.moduleIndex !== undefined ? { moduleIndex: job.moduleIndex } : {}),
        payload: { scope: "job", stage: job.stage, state: "QUEUED", jobId: job.id },
      },
    ]);
  }

  private async createJob(ctx: RunContext, stage: StageKind, spec: StoredJobSpec, moduleId?: string) {
    await this.enqueue(await this.insertJob(this.db, ctx, stage, spec, moduleId));
  }

  /** A run was created (QUEUED): start its first jobs. */
  async runCreated(runId: string): Promise<void> {
    const ctx = await this.context(runId);
    await this.db.run.update({ where: { id: runId }, data: { state: "RUNNING", startedAt: new Date() } });
    await appendRunEvents(this.db, runId, [{ type: "STATE", payload: { scope: "run", state: "RUNNING" } }]);
    if (ctx.run.kind === "E2E") return this.createJob(ctx, "E2E", e2eSpec(ctx));
    if (ctx.run.kind === "INCUBATION" && ctx.run.metaModelId) {
      const meta = await this.db.metaModel.findUniqueOrThrow({
        where: { id: ctx.run.metaModelId },
        include: { checkpoint: true },
      });
      if (!meta.checkpoint) throw new Error(`meta model ${meta.name} has no weights artifact`);
      return this.startModules(
        ctx,
        meta.checkpoint.sha256,
        metaModelConfig(meta, targetConfig(ctx.architecture)),
      );
    }
    return this.createJob(ctx, "PRETRAIN", pretrainSpec(ctx));
  }

  private async startModules(ctx: RunContext, metaSha: string, meta: VitConfig): Promise<void> {
    const modules = await this.db.module.findMany({
      where: { runId: ctx.run.id },
      orderBy: { index: "asc" },
    });
    for (const m of modules)
      await this.createJob(ctx, "MODULAR", modularSpec(ctx, m.index, metaSha, meta), m.id);
  }

  /**
   * Move the run on after a job succeeded. The decision and the new job rows are made under
   * the run row's lock; enqueueing and events happen after commit (they touch the run row too).
   */
  async advance(runId: string): Promise<void> {
    const ctx = await this.context(runId);
    const after = await this.db.$transaction(
      async (tx): Promise<() => Promise<void>> => {
        await tx.$queryRaw`select id from "run" where id = ${runId}::uuid for update`;
        const run = await tx.run.findUniqueOrThrow({ where: { id: runId } });
        const nothing = async () => {};
        if (run.state !== "RUNNING") return nothing;
        const jobs = await tx.job.findMany({ where: { runId }, include: { artifacts: true } });
        const done = (stage: StageKind) => jobs.filter((j) => j.stage === stage && j.state === "SUCCEEDED");
        const exists = (stage: StageKind) => jobs.some((j) => j.stage === stage);
        const weightsOf = (job: (typeof jobs)[number]) => {
          const weights = job.artifacts.find((a) => a.kind === "weights");
          if (!weights) throw new Error(`job ${job.id} (${job.stage}) succeeded without a weights artifact`);
          return weights;
        };

        const [pt] = done("PRETRAIN");
        if (pt && !exists("MODULAR") && run.kind !== "E2E") {
          const weights = weightsOf(pt);
          const metaConfig = metaConfigFor(
            targetConfig(ctx.architecture),
            ctx.architecture.moduleSplit.length,
          );
          await tx.metaModel.create({
            data: {
              name: `meta-${run.id.slice(0, 8)}`,
              ...metaModelColumns(metaConfig, { kind: "pretrain-run", runId: run.id }),
              datasetId: run.datasetId,
              projectId: run.projectId,
              sourceRunId: run.id,
              checkpointId: weights.id,
            },
          });
          if (run.kind === "META_PRETRAIN") {
            await this.markSucceeded(tx, runId, { metaWeights: weights.sha256 });
            return () => this.announceFinished(runId, { metaWeights: weights.sha256 });
          }
          const modules = await tx.module.findMany({ where: { runId }, orderBy: { index: "asc" } });
          const pending: PendingJob[] = [];
          for (const m of modules) {
            pending.push(
              await this.insertJob(tx, ctx, "MODULAR", modularSpec(ctx, m.index, weights.sha256), m.id),
            );
          }
          return async () => {
            for (const job of pending) await this.enqueue(job);
          };
        }
        const modules = await tx.module.findMany({ where: { runId }, orderBy: { index: "asc" } });
        if (
          run.kind === "INCUBATION" &&
          modules.every((m) => m.state === "SUCCEEDED") &&
          !exists("FINETUNE")
        ) {
          const modular = done("MODULAR");
          const sources = modules.map((m) => {
            const job = modular.find((j) => j.moduleId === m.id);
            if (!job) throw new Error(`module ${m.index} is SUCCEEDED but has no succeeded job`);
            return { moduleIndex: m.index, sha256: weightsOf(job).sha256 };
          });
          const ft = await this.insertJob(tx, ctx, "FINETUNE", finetuneSpec(ctx, sources));
          return () => this.enqueue(ft);
        }
        const [last] = [...done("FINETUNE"), ...done("E2E")];
        if (last) {
          const result = (last.result ?? {}) as Record<string, unknown>;
          await this.markSucceeded(tx, runId, result);
          return () => this.announceFinished(runId, result);
        }
        return nothing;
      },
      { timeout: 30_000 },
    );
    await after();
  }

  private async markSucceeded(tx: Prisma.TransactionClient, runId: string, result: Record<string, unknown>) {
    await tx.run.update({
      where: { id: runId },
      data: { state: "SUCCEEDED", finishedAt: new Date(), result: result as Prisma.InputJsonValue },
    });
  }

  private async announceFinished(runId: string, result: Record<string, unknown>): Promise<void> {
    await appendRunEvents(this.db, runId, [
      { type: "STATE", payload: { scope: "run", state: "SUCCEEDED", result } as Prisma.InputJsonValue },
    ]);
  }

  async failRun(runId: string, error: unknown): Promise<void> {
    const message = error instanceof Error ? error.message : String(error);
    this.logger.error({ runId, err: error }, "run failed");
    await this.db.run.update({
      where: { id: runId },
      data: { state: "FAILED", error: message, finishedAt: new Date() },
    });
    await appendRunEvents(this.db, runId, [
      { type: "STATE", payload: { scope: "run", state: "FAILED", error: message } },
    ]);
  }

  /** Cancel queued jobs in the queue and mark running ones; workers stop them within a heartbeat. */
  async cancelRun(runId: string): Promise<void> {
    const jobs = await this.db.job.findMany({ where: { runId, state: { in: ["QUEUED", "RUNNING"] } } });
    for (const job of jobs) {
      if (job.state === "QUEUED" && job.queueJobId)
        await this.boss.cancel(queueOfJob(job), job.queueJobId).catch(() => {});
    }
    await this.db.job.updateMany({
      where: { runId, state: { in: ["QUEUED", "RUNNING"] } },
      data: { state: "CANCELLED" },
    });
    await this.db.module.updateMany({
      where: { runId, state: { in: ["PENDING", "QUEUED", "RUNNING"] } },
      data: { state: "CANCELLED" },
    });
    await this.db.run.update({ where: { id: runId }, data: { state: "CANCELLED", finishedAt: new Date() } });
    await appendRunEvents(this.db, runId, [{ type: "STATE", payload: { scope: "run", state: "CANCELLED" } }]);
  }

  /** Train a FAILED or CANCELLED module again (from its last checkpoint). */
  async retryModule(moduleId: string): Promise<void> {
    const module = await this.db.module.findUniqueOrThrow({ where: { id: moduleId } });
    const job = await this.db.job.findFirstOrThrow({ where: { moduleId }, orderBy: { createdAt: "desc" } });
    await this.db.run.update({
      where: { id: module.runId },
      data: { state: "RUNNING", error: null, finishedAt: null },
    });
    const queueJobId = await enqueueJob(this.boss, queueOfJob(job), job.id, {
      singletonKey: `module:${moduleId}`,
    });
    await this.db.job.update({ where: { id: job.id }, data: { state: "QUEUED", error: null, queueJobId } });
    await this.db.module.update({ where: { id: moduleId }, data: { state: "QUEUED" } });
    await appendRunEvents(this.db, module.runId, [
      {
        type: "STATE",
        moduleIndex: module.index,
        payload: { scope: "module", state: "QUEUED", retry: true },
      },
    ]);
  }

  /**
   * Jobs whose worker stopped heartbeating (killed, machine lost) go back to the queue: pg-boss
   * retries them, and the retry resumes from the job's last checkpoint. Returns the job ids.
   */
  async failStaleJobs(staleAfterMs: number): Promise<string[]> {
    const cutoff = new Date(Date.now() - staleAfterMs);
    const stale = await this.db.job.findMany({
      where: { state: "RUNNING", heartbeatAt: { lt: cutoff } },
      include: { module: true },
    });
    for (const job of stale) {
      const claimed = await this.db.job.updateMany({
        where: { id: job.id, state: "RUNNING", heartbeatAt: { lt: cutoff } },
        data: { state: "QUEUED", error: `worker ${job.workerId} stopped heartbeating` },
      });
      if (claimed.count === 0) continue; // another monitor got there first
      this.logger.warn({ jobId: job.id, workerId: job.workerId }, "job's worker went silent; retrying");
      if (job.queueJobId) await this.boss.fail(queueOfJob(job), job.queueJobId, { reason: "heartbeat lost" });
      await appendRunEvents(this.db, job.runId, [
        {
          type: "STATE",
          ...(job.module ? { moduleIndex: job.module.index } : {}),
          payload: {
            scope: "job",
            stage: job.stage,
            state: "RETRYING",
            reason: `worker ${job.workerId} stopped heartbeating`,
          },
        },
      ]);
    }
    return stale.map((j) => j.id);
  }
}

/**
 * Watch for jobs whose worker went silent, every third of `staleAfterMs`. Every DB worker runs
 * one, and so does the API server process, so recovery works when all workers are API workers.
 */
export function startStaleJobSweep(dispatcher: Dispatcher, staleAfterMs: number, logger: Logger): () => void {
  const timer = setInterval(
    () => {
      void dispatcher
        .failStaleJobs(staleAfterMs)
        .catch((e) => logger.warn({ err: e }, "stale-job check failed"));
    },
    Math.max(1000, staleAfterMs / 3),
  );
  timer.unref();
  return () => clearInterval(timer);
}
