/**
 * A training worker: claims jobs through its backend (the database, or the GraphQL API with a
 * worker token — backend.ts) and runs each in a child process (`incubator job`), so a blocking
 * ONNX Runtime step never stalls heartbeats, and a crashing job never takes the worker down.
 *
 * While a job runs the worker
 *   - heartbeats (the answer says continue, cancel — SIGTERM the child, which saves a checkpoint
 *     and exits — or taken over — another worker has the job now: drop this copy),
 *   - sends the child's JSON-line events in batches, in order (progress is already throttled to
 *     ~2/s by the job); the lifecycle turns them into RunEvents and the module's step/loss,
 *   - uploads every checkpoint to the artifact store first, so a retry on another machine
 *     resumes from the last one.
 * The job itself assembles and exports what its spec asks for; the worker uploads the files its
 * result lists.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import type { ExecutionProvider } from "../../engine/runtime/providers.ts";
import { ArtifactKind } from "../../generated/prisma/enums.ts";
import {
  JOB_FAILED_PERMANENTLY_EXIT_CODE,
  type JobEvent,
  type JobResult,
  type JobSpec,
} from "../../incubation/job.ts";
import { type JobProcess, onJobEvents, spawnJobProcess } from "../../incubation/job-process.ts";
import { isQuotaRefusal } from "../artifacts/quota.ts";
import { ARTIFACT_REF } from "../dispatch/plan.ts";
import type { Logger } from "../logger.ts";
import type { WorkerBackend } from "./backend.ts";
import {
  type ClaimedJob,
  type Holder,
  JobNotHeldError,
  type ProducedArtifact,
  type WorkerEvent,
} from "./job-lifecycle.ts";
import { untilAnswered } from "./transient.ts";

export interface WorkerOptions {
  backend: WorkerBackend;
  logger: Logger;
  /** Scratch space for inputs, checkpoints and outputs. */
  workDir: string;
  /** The `incubator` entry script (the child runs `incubator job`). */
  bin: string;
  workerId?: string;
  heartbeatMs?: number;
  /** How often an idle worker asks for a job (default 1000 ms). */
  pollMs?: number;
  threads?: number;
  /** ONNX Runtime execution provider for this worker's jobs (default cpu). */
  device?: ExecutionProvider;
  /** Jobs cache their training shard here (DATA_DIR/shards), so later jobs on this machine reuse it. */
  dataCacheDir?: string;
  /** Jobs cache their compiled step graphs here (DATA_DIR/graph-cache), so a retry or a later run skips the compile. */
  graphCacheDir?: string;
  /** Where jobs download shards whose source files are not on this machine (the API server). */
  dataServer?: { baseUrl: string; token?: string };
  /** Called when the backend refuses this worker for good (e.g. a revoked token); the loop ends. */
  onFatal?: (error: Error) => void;
}

export const defaultWorkerId = () => `${hostname()}:${process.pid}`;

class JobCancelled extends Error {}

/** The job failed in a way a retry would repeat (NaN loss, bad data): no retry. */
class PermanentJobFailure extends Error {}

export class TrainingWorker {
  readonly id: string;
  private readonly running = new Set<JobProcess>();
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly o: WorkerOptions) {
    this.id = o.workerId ?? defaultWorkerId();
  }

  async start(): Promise<void> {
    this.loop = this.claimLoop();
    this.o.logger.info({ workerId: this.id }, "worker ready");
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    for (const child of this.running) child.kill("SIGTERM");
    // The running job (if any) saves a checkpoint and is handed back for a retry.
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 15_000).unref())]);
  }

  private async claimLoop(): Promise<void> {
    while (!this.stopping) {
      let job: ClaimedJob | null = null;
      try {
        job = await this.o.backend.claim();
      } catch (error) {
        if ((error as { fatal?: boolean }).fatal) {
          this.stopping = true;
          this.o.onFatal?.(error as Error);
          return;
        }
        this.o.logger.warn({ err: error }, "claiming a job failed");
      }
      if (job) await this.handle(job);
      else
        await new Promise<void>((r) => {
          const timer = setTimeout(r, this.o.pollMs ?? 1000);
          this.wake = () => {
            clearTimeout(timer);
            r();
          };
        });
    }
  }

  private async handle(job: ClaimedJob): Promise<void> {
    const { backend, logger } = this.o;
    const holder: Holder = { jobId: job.jobId, workerId: this.id, attempt: job.attempt };
    logger.info({ jobId: job.jobId, stage: job.stage, attempt: job.attempt }, "claimed a job");
    const dir = resolve(this.o.workDir, job.jobId);
    mkdirSync(dir, { recursive: true });
    try {
      const spec = {
        ...(await this.localSpec(job, dir)),
        ...this.dataCache(job.spec.datasetId),
        ...(this.o.graphCacheDir ? { graphCacheDir: this.o.graphCacheDir } : {}),
      };
      const result = await this.runChild(holder, spec);
      const produced = await this.outputs(job, result);
      await this.untilAnswered("completing the job", () => backend.complete(holder, result, produced));
      logger.info({ jobId: job.jobId }, "job succeeded");
    } catch (error) {
      if (error instanceof JobCancelled) {
        logger.info({ jobId: job.jobId }, "job cancelled");
        return;
      }
      if (error instanceof JobNotHeldError) {
        logger.warn({ jobId: job.jobId, reason: error.message }, "job was taken over; dropped this copy");
        return;
      }
      const message = this.stopping ? `worker ${this.id} stopped` : (error as Error).message;
      try {
        // A project over its artifact quota stays over it on a retry: the failure is permanent.
        const permanent = error instanceof PermanentJobFailure || isQuotaRefusal(error);
        const { willRetry } = await this.untilAnswered("reporting the failure", () =>
          backend.fail(holder, message, permanent),
        );
        logger.warn({ jobId: job.jobId, err: error, willRetry }, "job failed");
      } catch (e) {
        logger.warn({ jobId: job.jobId, err: e }, "reporting a job failure failed");
      }
    }
  }

  /**
   * Upload a checkpoint before its event is recorded. One that cannot be uploaded (other than an
   * outage, which is waited out) is skipped, not allowed to take the batch's other events — or
   * the job's result — down with it: the job saves another, and its last one at the end.
   */
  private async uploadCheckpoint(path: string, step: number) {
    try {
      return await this.untilAnswered("uploading a checkpoint", () => this.o.backend.putArtifact(path));
    } catch (error) {
      this.o.logger.warn({ err: error, step }, "a checkpoint could not be uploaded; skipped it");
      return null;
    }
  }

  /** A call to the platform, retried through a database or API outage (transient.ts). */
  private untilAnswered<T>(what: string, call: () => Promise<T>): Promise<T> {
    return untilAnswered(call, {
      onRetry: (error, delayMs) =>
        this.o.logger.warn({ err: error, delayMs }, `${what}: the platform is unreachable; retrying`),
    });
  }

  /** The job's shard cache (and download source), when this worker has one. */
  private dataCache(datasetId: string | undefined): Pick<JobSpec, "dataCache"> {
    const { dataCacheDir: dir, dataServer: server } = this.o;
    if (!dir) return {};
    if (!datasetId) return { dataCache: { dir } };
    return { dataCache: { dir, ...(server ? { remote: { ...server, datasetId } } : {}) } };
  }

  /** The stored spec with its artifact references as local files, on this worker's threads and device. */
  private async localSpec(job: ClaimedJob, dir: string): Promise<JobSpec> {
    const { backend } = this.o;
    const fetch = async (ref: string) =>
      ref.startsWith(ARTIFACT_REF) ? backend.getArtifact(ref.slice(ARTIFACT_REF.length)) : ref;
    const { datasetId: _dataset, ...rest } = job.spec;
    const spec: JobSpec = {
      ...rest,
      outDir: dir,
      ...(this.o.threads ? { threads: this.o.threads } : {}),
      ...(this.o.device ? { provider: this.o.device } : {}),
    };
    if (spec.metaWeights) spec.metaWeights = await fetch(spec.metaWeights);
    if (spec.initWeights) spec.initWeights = await fetch(spec.initWeights);
    if (spec.assembleFrom) {
      const modules = [];
      for (const m of spec.assembleFrom) modules.push({ ...m, weights: await fetch(m.weights) });
      spec.assembleFrom = modules;
    }
    if (job.resumeFrom) spec.resumeFrom = await backend.getArtifact(job.resumeFrom.sha256);
    return spec;
  }

  /** Uploads what the job's result lists: its weights, the assembled model, and the exported final model. */
  private async outputs(job: ClaimedJob, result: JobResult): Promise<ProducedArtifact[]> {
    const { backend } = this.o;
    const produced: ProducedArtifact[] = [];
    if (result.assembled) {
      const modules = job.spec.assembleFrom?.map((m) => m.weights) ?? [];
      produced.push({
        kind: ArtifactKind.ASSEMBLED_MODEL,
        ...(await backend.putArtifact(result.assembled.path)),
        metadata: { modules },
      });
    }
    const weights = await backend.putArtifact(result.weightsPath);
    const phase = { phase: result.phase };
    produced.push({ kind: ArtifactKind.WEIGHTS, ...weights, metadata: phase });
    if (result.onnxPath)
      produced.push(
        { kind: ArtifactKind.FINAL_WEIGHTS, ...weights, metadata: phase },
        { kind: ArtifactKind.FINAL_MODEL_ONNX, ...(await backend.putArtifact(result.onnxPath)) },
      );
    return produced;
  }

  private runChild(holder: Holder, spec: JobSpec): Promise<JobResult> {
    const { backend, logger } = this.o;
    const specPath = join(spec.outDir, "spec.json");
    writeFileSync(specPath, JSON.stringify(spec));
    const child = spawnJobProcess(this.o.bin, `@${specPath}`);
    this.running.add(child);
    let result: JobResult | undefined;
    let stop: "cancelled" | "taken_over" | "quota" | null = null;
    let quotaRefusal: Error | undefined;
    // Each batch's key (attempt and number) goes with every retry of it: recorded once (recordEvents).
    let batches = 0;
    let stderr = "";
    // Events go out in order, in batches: whatever arrived while the previous batch was in
    // flight travels together (one transaction, consecutive seq).
    const pending: JobEvent[] = [];
    let sending: Promise<void> = Promise.resolve();
    const send = async () => {
      while (pending.length > 0) {
        const batch: WorkerEvent[] = [];
        for (const event of pending.splice(0)) {
          if (event.type === "done") result = event.result;
          else if (event.type === "checkpoint") {
            const uploaded = await this.uploadCheckpoint(event.path, event.step);
            if (uploaded) batch.push({ type: "checkpoint", step: event.step, ...uploaded });
          } else batch.push(event);
        }
        if (batch.length) {
          const batchKey = `${holder.attempt}:${++batches}`;
          await this.untilAnswered("recording events", () => backend.recordEvents(holder, batch, batchKey));
        }
      }
    };
    const kill = (why: "cancelled" | "taken_over" | "quota") => {
      if (stop) return;
      stop = why;
      child.kill("SIGTERM");
    };
    const heartbeat = setInterval(() => {
      void backend
        .heartbeat(holder)
        .then((answer) => {
          if (answer === "cancel" && !stop) {
            logger.info({ jobId: holder.jobId }, "cancellation reached the worker; stopping the job");
            kill("cancelled");
          } else if (answer === "taken_over" && !stop) {
            logger.warn({ jobId: holder.jobId }, "another worker took the job over; stopping this copy");
            kill("taken_over");
          }
        })
        .catch(() => {});
    }, this.o.heartbeatMs ?? 5_000);

    return new Promise((resolvePromise, reject) => {
      onJobEvents(
        child.stdout,
        (event) => {
          pending.push(event);
          sending = sending.then(send).catch((e) => {
            if (e instanceof JobNotHeldError) kill("taken_over");
            else if (isQuotaRefusal(e)) {
              quotaRefusal = e as Error;
              kill("quota");
            } else logger.warn({ err: e }, "recording events failed");
          });
        },
        (line, problem) => {
          // Stray output is the job's business; a line that looked like an event is worth a warning.
          const fields = { jobId: holder.jobId, line: line.slice(0, 500) };
          if (problem)
            logger.warn({ ...fields, problem }, "job printed a line that is not an event; ignored");
          else logger.debug(fields, "job output");
        },
      );
      child.stderr.on("data", (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4000);
      });
      child.on("exit", (code, signal) => {
        clearInterval(heartbeat);
        this.running.delete(child);
        void sending.then(() => {
          if (stop === "cancelled") reject(new JobCancelled("cancelled"));
          else if (stop === "taken_over") reject(new JobNotHeldError("taken over"));
          else if (stop === "quota") reject(new PermanentJobFailure(quotaRefusal!.message));
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
}
