/**
 * A training worker: claims jobs from the queue and runs each in a child process
 * (`incubator job`), so a blocking ONNX Runtime step never stalls heartbeats, and a crashing
 * job never takes the worker down.
 *
 * While a job runs the worker
 *   - heartbeats into job.heartbeat_at (and notices cancellation there, then SIGTERMs the child,
 *     which saves a checkpoint and exits),
 *   - turns the child's JSON-line events into RunEvent rows (progress is already throttled to
 *     ~2/s by the job) and the module's step/loss columns,
 *   - uploads every checkpoint to the artifact store, so a retry on another machine resumes from
 *     the last one.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type PgBoss from "pg-boss";
import { loadWeights, saveWeights } from "../../engine/checkpoint/checkpoint.ts";
import { exportVitOnnx } from "../../engine/export/onnx-export.ts";
import { vitParamSpecs } from "../../engine/models/vit.ts";
import type { ExecutionProvider } from "../../engine/runtime/providers.ts";
import type { Prisma } from "../../generated/prisma/client.ts";
import { assembleTarget } from "../../incubation/assemble.ts";
import {
  JOB_FAILED_PERMANENTLY_EXIT_CODE,
  type JobEvent,
  type JobResult,
  type JobSpec,
} from "../../incubation/job.ts";
import { type JobProcess, onJobEvents, spawnJobProcess } from "../../incubation/job-process.ts";
import type { ArtifactStore } from "../artifacts/store.ts";
import type { Db } from "../db/client.ts";
import type { Dispatcher } from "../dispatch/dispatcher.ts";
import { ARTIFACT_REF, type StoredJobSpec } from "../dispatch/plan.ts";
import { appendRunEvents } from "../events/event-log.ts";
import type { Logger } from "../logger.ts";
import { TRAIN_QUEUE, type TrainMessage } from "../queue/queue.ts";

export interface WorkerOptions {
  db: Db;
  boss: PgBoss;
  dispatcher: Dispatcher;
  store: ArtifactStore;
  logger: Logger;
  /** Scratch space for inputs, checkpoints and outputs. */
  workDir: string;
  /** The `incubator` entry script (the child runs `incubator job`). */
  bin: string;
  workerId?: string;
  heartbeatMs?: number;
  /** Consider another worker dead after this long without a heartbeat. */
  staleAfterMs?: number;
  threads?: number;
  /** ONNX Runtime execution provider for this worker's jobs (default cpu). */
  device?: ExecutionProvider;
  /** Jobs cache their training shard here (DATA_DIR/shards), so later jobs on this machine reuse it. */
  dataCacheDir?: string;
  /** Where jobs download shards whose source files are not on this machine (the API server). */
  dataServer?: { baseUrl: string; token?: string };
}

class JobCancelled extends Error {}

/** The job failed in a way a retry would repeat (NaN loss, bad data): no retry. */
class PermanentJobFailure extends Error {}

export class TrainingWorker {
  readonly id: string;
  private monitor: NodeJS.Timeout | null = null;
  private readonly running = new Set<JobProcess>();

  constructor(private readonly o: WorkerOptions) {
    this.id = o.workerId ?? `${hostname()}:${process.pid}`;
  }

  async start(): Promise<void> {
    await this.o.boss.work<TrainMessage>(
      TRAIN_QUEUE,
      { batchSize: 1, pollingIntervalSeconds: 1, includeMetadata: true },
      async ([message]) => {
        if (message) await this.handle(message.data.jobId, message.retryCount >= message.retryLimit);
      },
    );
    // Every worker also watches for silent peers, so recovery needs no extra service.
    const staleAfter = this.o.staleAfterMs ?? 30_000;
    this.monitor = setInterval(
      () => {
        void this.o.dispatcher
          .failStaleJobs(staleAfter)
          .catch((e) => this.o.logger.warn({ err: e }, "stale-job check failed"));
      },
      Math.max(1000, staleAfter / 3),
    );
    this.monitor.unref();
    this.o.logger.info({ workerId: this.id }, "worker ready");
  }

  async stop(): Promise<void> {
    if (this.monitor) clearInterval(this.monitor);
    for (const child of this.running) child.kill("SIGTERM");
    await this.o.boss.offWork(TRAIN_QUEUE);
  }

  private async handle(jobId: string, lastAttempt: boolean): Promise<void> {
    const { db, logger } = this.o;
    const job = await db.job.findUnique({ where: { id: jobId }, include: { run: true, module: true } });
    if (!job || job.state === "SUCCEEDED" || job.state === "CANCELLED" || job.run.state === "CANCELLED")
      return;
    const moduleIndex = job.module?.index;
    const scope = moduleIndex !== undefined ? { moduleIndex } : {};
    const updated = await db.job.update({
      where: { id: jobId },
      data: {
        state: "RUNNING",
        attempts: { increment: 1 },
        workerId: this.id,
        startedAt: new Date(),
        heartbeatAt: new Date(),
        error: null,
      },
    });
    if (job.moduleId) await db.module.update({ where: { id: job.moduleId }, data: { state: "RUNNING" } });
    await appendRunEvents(db, job.runId, [
      {
        type: "STATE",
        ...scope,
        payload: {
          scope: "job",
          stage: job.stage,
          state: "RUNNING",
          attempt: updated.attempts,
          workerId: this.id,
        },
      },
    ]);

    const dir = resolve(this.o.workDir, jobId);
    mkdirSync(dir, { recursive: true });
    try {
      const stored = job.spec as unknown as StoredJobSpec;
      const spec = {
        ...(await this.localSpec(stored, jobId, job.runId, dir)),
        ...this.dataCache(job.run.datasetId),
      };
      const result = await this.runChild(job.runId, jobId, moduleIndex, spec);
      await this.finish(job.runId, jobId, job.moduleId, spec, result);
      await this.o.dispatcher.advance(job.runId);
    } catch (error) {
      const message = (error as Error).message;
      if (error instanceof JobCancelled) {
        logger.info({ jobId }, "job cancelled");
        return;
      }
      const final = lastAttempt || error instanceof PermanentJobFailure;
      logger.warn({ jobId, err: error, final }, "job failed");
      await db.job.update({
        where: { id: jobId },
        data: { state: final ? "FAILED" : "QUEUED", error: message },
      });
      await appendRunEvents(db, job.runId, [
        { type: "LOG", ...scope, payload: { level: "error", stage: job.stage, message, willRetry: !final } },
      ]);
      if (final) {
        if (job.moduleId) await db.module.update({ where: { id: job.moduleId }, data: { state: "FAILED" } });
        const what = job.module ? `module ${job.module.index}` : job.stage.toLowerCase();
        await this.o.dispatcher.failRun(job.runId, new Error(`${what} failed: ${message}`));
        if (error instanceof PermanentJobFailure) return; // a retry would fail the same way
      }
      throw error; // pg-boss records the failure and schedules the retry
    }
  }

  /** The job's shard cache (and download source), when this worker has one. */
  private dataCache(datasetId: string): Pick<JobSpec, "dataCache"> {
    const { dataCacheDir: dir, dataServer: server } = this.o;
    if (!dir) return {};
    return { dataCache: { dir, ...(server ? { remote: { ...server, datasetId } } : {}) } };
  }

  /** Resolve artifact references to local files; pick up the latest checkpoint to resume. */
  private async localSpec(
    stored: StoredJobSpec,
    jobId: string,
    runId: string,
    dir: string,
  ): Promise<JobSpec> {
    const fetch = async (ref: string) => {
      if (!ref.startsWith(ARTIFACT_REF)) return ref;
      return this.o.store.getFile(ref.slice(ARTIFACT_REF.length));
    };
    const { assembleFrom, exportOnnx: _export, ...rest } = stored;
    const spec: JobSpec = {
      ...rest,
      outDir: dir,
      ...(this.o.threads ? { threads: this.o.threads } : {}),
      ...(this.o.device ? { provider: this.o.device } : {}),
    };
    if (spec.metaWeights) spec.metaWeights = await fetch(spec.metaWeights);
    if (assembleFrom) {
      const sources = [];
      for (const m of assembleFrom)
        sources.push({ moduleIndex: m.moduleIndex, parameters: loadWeights(await fetch(m.weights)) });
      const assembled = assembleTarget(spec.target, spec.split, sources);
      const path = join(dir, "assembled.safetensors");
      saveWeights(
        path,
        { parameters: assembled.parameters, shapes: vitParamSpecs(spec.target) },
        { metadata: { phase: "assemble" } },
      );
      await this.record(runId, jobId, "assembled-model", path, {
        modules: assembleFrom.map((m) => m.weights),
      });
      spec.initWeights = path;
    }
    const checkpoint = await this.o.db.artifact.findFirst({
      where: { jobId, kind: "checkpoint" },
      orderBy: [{ step: "desc" }, { createdAt: "desc" }],
    });
    if (checkpoint) spec.resumeFrom = await this.o.store.getFile(checkpoint.sha256);
    return spec;
  }

  private async record(
    runId: string,
    jobId: string,
    kind: string,
    path: string,
    metadata: Record<string, unknown> = {},
    step?: number,
  ) {
    const stored = await this.o.store.putFile(path);
    return this.o.db.artifact.create({
      data: {
        runId,
        jobId,
        kind,
        sha256: stored.sha256,
        sizeBytes: BigInt(stored.sizeBytes),
        ...(step !== undefined ? { step } : {}),
        metadata: metadata as Prisma.InputJsonValue,
      },
    });
  }

  private runChild(
    runId: string,
    jobId: string,
    moduleIndex: number | undefined,
    spec: JobSpec,
  ): Promise<JobResult> {
    const { db, logger } = this.o;
    const specPath = join(spec.outDir, "spec.json");
    writeFileSync(specPath, JSON.stringify(spec));
    const child = spawnJobProcess(this.o.bin, `@${specPath}`);
    this.running.add(child);
    const scope = moduleIndex !== undefined ? { moduleIndex } : {};
    let result: JobResult | undefined;
    let cancelled = false;
    let stderr = "";
    // Events are written in order, one at a time, so seq order matches the job's own order.
    let chain: Promise<unknown> = Promise.resolve();
    const handleEvent = async (event: JobEvent) => {
      if (event.type === "progress") {
        await appendRunEvents(db, runId, [
          { type: "PROGRESS", ...scope, payload: { ...event, stage: spec.phase } },
        ]);
        if (moduleIndex !== undefined) {
          await db.module.updateMany({
            where: { runId, index: moduleIndex },
            data: { step: event.step, totalSteps: event.totalSteps, loss: event.loss },
          });
        }
      } else if (event.type === "checkpoint") {
        const artifact = await this.record(runId, jobId, "checkpoint", event.path, {}, event.step);
        await appendRunEvents(db, runId, [
          {
            type: "ARTIFACT",
            ...scope,
            payload: { kind: "checkpoint", step: event.step, sha256: artifact.sha256 },
          },
        ]);
      } else if (event.type === "eval") {
        await appendRunEvents(db, runId, [
          { type: "METRIC", ...scope, payload: { ...event, stage: spec.phase } },
        ]);
      } else if (event.type === "start") {
        await appendRunEvents(db, runId, [
          { type: "LOG", ...scope, payload: { ...event, stage: spec.phase } },
        ]);
      } else if (event.type === "done") {
        result = event.result;
      }
    };
    const heartbeat = setInterval(() => {
      void (async () => {
        const job = await db.job.update({
          where: { id: jobId },
          data: { heartbeatAt: new Date() },
          select: { state: true },
        });
        if (job.state === "CANCELLED" && !cancelled) {
          cancelled = true;
          logger.info({ jobId }, "cancellation reached the worker; stopping the job");
          child.kill("SIGTERM");
        }
      })().catch(() => {});
    }, this.o.heartbeatMs ?? 5_000);

    return new Promise((resolvePromise, reject) => {
      onJobEvents(child.stdout, (event) => {
        chain = chain
          .then(() => handleEvent(event))
          .catch((e) => logger.warn({ err: e }, "recording an event failed"));
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
      });
      child.on("exit", (code, signal) => {
        clearInterval(heartbeat);
        this.running.delete(child);
        void chain.then(() => {
          if (cancelled) reject(new JobCancelled("cancelled"));
          else if (code === 0 && result) resolvePromise(result);
          else {
            const last = (stderr.trim().split("\n").filter(Boolean).at(-1) ?? "").replace(/^incubator: /, "");
            if (code === JOB_FAILED_PERMANENTLY_EXIT_CODE) reject(new PermanentJobFailure(last));
            else
              reject(
                new Error(`job process exited with ${signal ?? `code ${code}`}${last ? `: ${last}` : ""}`),
              );
          }
        });
      });
    });
  }

  private async finish(
    runId: string,
    jobId: string,
    moduleId: string | null,
    spec: JobSpec,
    result: JobResult,
  ) {
    const { db } = this.o;
    await this.record(runId, jobId, "weights", result.weightsPath, { phase: spec.phase });
    const stored = { ...result } as Record<string, unknown>;
    if (spec.phase === "finetune" || spec.phase === "e2e") {
      // The final model, for download: its weights (same bytes as "weights": stored once) and ONNX.
      const onnxPath = join(spec.outDir, "model.onnx");
      exportVitOnnx(
        onnxPath,
        spec.target,
        loadWeights(result.weightsPath, { expect: vitParamSpecs(spec.target) }),
      );
      const weights = await this.record(runId, jobId, "final-weights", result.weightsPath, {
        phase: spec.phase,
      });
      const onnx = await this.record(runId, jobId, "final-model-onnx", onnxPath);
      Object.assign(stored, { onnxSha256: onnx.sha256, weightsSha256: weights.sha256 });
    }
    await db.job.update({
      where: { id: jobId },
      data: { state: "SUCCEEDED", finishedAt: new Date(), result: stored as Prisma.InputJsonValue },
    });
    if (moduleId) await db.module.update({ where: { id: moduleId }, data: { state: "SUCCEEDED" } });
    await appendRunEvents(db, runId, [
      {
        type: "STATE",
        ...(spec.moduleIndex !== undefined ? { moduleIndex: spec.moduleIndex } : {}),
        payload: {
          scope: "job",
          stage: spec.phase,
          state: "SUCCEEDED",
          result: stored,
        } as Prisma.InputJsonValue,
      },
    ]);
  }
}
