/**
 * The job lifecycle against the real queue (pg-boss on the test database): placement (labels,
 * shard pins) decides who may claim what, and heartbeats answer continue / cancel / taken over.
 * No training here: the claims are what is tested.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type PgBoss from "pg-boss";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { Dispatcher } from "../../src/platform/dispatch/dispatcher.ts";
import { mayTake, placementOfQueue, queueNameFor, queueOfJob } from "../../src/platform/queue/placement.ts";
import { openQueue } from "../../src/platform/queue/queue.ts";
import { JobLifecycle, JobNotHeldError } from "../../src/platform/worker/job-lifecycle.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
let boss: PgBoss;
let dispatcher: Dispatcher;
let lifecycle: JobLifecycle;
let store: LocalArtifactStore;
const logger = pino({ level: "silent" });
const anyWorker = { labels: [], shards: [] };

beforeAll(async () => {
  boss = await openQueue(t.url);
  dispatcher = new Dispatcher(t.db, boss, logger);
  store = new LocalArtifactStore(join(mkdtempSync(join(tmpdir(), "incubator-lifecycle-")), "a"));
  lifecycle = new JobLifecycle(t.db, boss, dispatcher, store, logger);
});

afterAll(async () => {
  await boss?.stop({ graceful: false });
});

/** An INCUBATION run with a registered meta model: runCreated queues its 4 modular jobs at once. */
async function modularRun(
  options: { decentralized?: boolean; placement?: unknown; dispatcher?: Dispatcher } = {},
) {
  const meta = await t.db.artifact.create({
    data: { kind: "META_WEIGHTS", sha256: "a".repeat(64), sizeBytes: 1n },
  });
  const metaModel = await t.db.metaModel.create({
    data: {
      name: `meta-${Math.random().toString(36).slice(2)}`,
      width: 64,
      heads: 4,
      patchSize: 4,
      imageSize: 16,
      numModules: 4,
      numClasses: 10,
      checkpointId: meta.id,
    },
  });
  const { run } = await createRunRows(t.db, {
    dataset: { options: { format: "synthetic", numClasses: 10, length: 40 }, trainSize: 40 },
    run: {
      metaModelId: metaModel.id,
      decentralized: options.decentralized ?? false,
      placement: (options.placement ?? []) as never,
    },
    modules: true,
  });
  await (options.dispatcher ?? dispatcher).runCreated(run.id);
  return run;
}

async function drain(worker: { labels: string[]; shards: number[] }, id: string) {
  const claimed = [];
  for (;;) {
    const job = await lifecycle.claimNext({ ...worker, workerId: id });
    if (!job) return claimed;
    claimed.push(job);
  }
}

describe("placement", () => {
  it("names one queue per placement and reads it back", () => {
    const placement = { labels: ["site=a", "gpu=h100"], shard: 2 };
    expect(queueNameFor(placement)).toBe("train-job#shard-2[gpu=h100,site=a]");
    expect(placementOfQueue(queueNameFor(placement))).toEqual({ labels: ["gpu=h100", "site=a"], shard: 2 });
    expect(placementOfQueue("train-job")).toEqual({ labels: [] });
    expect(placementOfQueue("train-job-dead")).toBeNull();
    expect(mayTake({ labels: ["site=a"], shards: [] }, { labels: ["site=b"] })).toBe(false);
    expect(mayTake({ labels: ["site=a"], shards: [2] }, { labels: [] })).toBe(false); // pinned: shard jobs only
  });

  it("a pinned worker takes only the modular jobs of its shards; an unpinned one takes the rest", async () => {
    const run = await modularRun({ decentralized: true });
    const jobs = await t.db.job.findMany({ where: { runId: run.id }, include: { module: true } });
    expect(jobs.map((j) => j.shard).sort()).toEqual([0, 1, 2, 3]);

    const pinned = await drain({ labels: [], shards: [2] }, "pinned-2");
    expect(pinned.map((j) => j.moduleIndex)).toEqual([2]);
    expect(pinned[0]!.spec.dataset).toMatchObject({ shard: { index: 2, count: 4 } });
    const rest = await drain(anyWorker, "unpinned");
    expect(rest.map((j) => j.moduleIndex).sort()).toEqual([0, 1, 3]);
  });

  it("a job requiring site=b is not taken by a site=a worker and is taken by a site=b worker", async () => {
    const run = await modularRun({ placement: [{ moduleIndex: 1, labels: ["site=b"] }] });
    const siteA = await drain({ labels: ["site=a"], shards: [] }, "site-a");
    expect(siteA.map((j) => j.moduleIndex).sort()).toEqual([0, 2, 3]);
    const siteB = await drain({ labels: ["site=b", "gpu=h100"], shards: [] }, "site-b");
    expect(siteB.map((j) => j.moduleIndex)).toEqual([1]);
    const job = await t.db.job.findFirstOrThrow({ where: { runId: run.id, module: { index: 1 } } });
    expect(job).toMatchObject({ labels: ["site=b"], state: "RUNNING", workerId: "site-b" });
  });

  it("a pinned worker does not take jobs that read the whole training set", async () => {
    await modularRun();
    expect(await drain({ labels: [], shards: [0, 1, 2, 3] }, "pinned-all")).toEqual([]);
    expect((await drain(anyWorker, "unpinned-2")).length).toBe(4);
  });
});

describe("heartbeats and holders", () => {
  it("answers continue, then cancel after cancelRun; a stale job is taken over and its old holder refused", async () => {
    const run = await modularRun({ placement: [{ labels: ["lane=hb"] }] });
    const worker = { labels: ["lane=hb"], shards: [] };
    const [first, second] = await drain(worker, "w1");
    const holder = (job: typeof first, workerId: string) => ({
      jobId: job!.jobId,
      workerId,
      attempt: job!.attempt,
    });
    expect(await lifecycle.heartbeat(holder(first, "w1"))).toBe("continue");
    expect(await lifecycle.heartbeat(holder(first, "someone-else"))).toBe("taken_over");

    // Silent for too long: the sweep hands it back, a second worker claims attempt 2.
    await t.db.job.update({
      where: { id: second!.jobId },
      data: { heartbeatAt: new Date(Date.now() - 60_000) },
    });
    expect(await dispatcher.failStaleJobs(30_000)).toEqual([second!.jobId]);
    let retried = null;
    for (let i = 0; i < 40 && !retried; i++) {
      retried = (await drain(worker, "w2")).find((j) => j.jobId === second!.jobId) ?? null;
      if (!retried) await new Promise((r) => setTimeout(r, 250)); // pg-boss retry delay
    }
    expect(retried?.attempt).toBe(2);
    expect(await lifecycle.heartbeat(holder(second, "w1"))).toBe("taken_over");
    await expect(lifecycle.recordEvents(holder(second, "w1"), [])).rejects.toThrow(JobNotHeldError);
    await expect(lifecycle.fail(holder(second, "w1"), "late", false)).rejects.toThrow(/taken over/);

    await dispatcher.cancelRun(run.id);
    expect(await lifecycle.heartbeat(holder(first, "w1"))).toBe("cancel");
  }, 30_000);
});

describe("one transaction per state change", () => {
  /** A file in the store, as a worker would have uploaded it. */
  async function uploaded(content: string) {
    const path = join(mkdtempSync(join(tmpdir(), "incubator-upload-")), "f");
    writeFileSync(path, content);
    return store.putFile(path);
  }
  const result = { phase: "modular", steps: 1, finalLoss: 1, evalAccuracy: null } as never;

  it("a completion whose run cannot advance leaves nothing half-done, and succeeds once it can", async () => {
    const run = await modularRun({ placement: [{ labels: ["lane=tx"] }] });
    const worker = { labels: ["lane=tx"], shards: [] };
    const jobs = await drain(worker, "wtx");
    expect(jobs).toHaveLength(4);
    const holder = (j: (typeof jobs)[number]) => ({ jobId: j.jobId, workerId: "wtx", attempt: j.attempt });
    for (const j of jobs.slice(0, 3)) {
      const weights = await uploaded(`module ${j.moduleIndex}`);
      await lifecycle.complete(holder(j), result, [{ kind: "WEIGHTS", ...weights }]);
    }
    const last = jobs[3]!;
    const seqBefore = (await t.db.run.findUniqueOrThrow({ where: { id: run.id } })).lastEventSeq;
    // The last module reports no weights: assembling the fine-tuning job fails inside the transaction.
    await expect(lifecycle.complete(holder(last), result, [])).rejects.toThrow(/without a weights artifact/);
    const after = await t.db.run.findUniqueOrThrow({
      where: { id: run.id },
      include: { jobs: true, modules: true },
    });
    expect(after.lastEventSeq).toBe(seqBefore); // no event of the rolled-back change
    expect(after.state).toBe("RUNNING");
    expect(after.jobs.find((j) => j.id === last.jobId)!.state).toBe("RUNNING");
    expect(after.modules.find((m) => m.index === last.moduleIndex)!.state).toBe("RUNNING");
    expect(after.jobs.some((j) => j.stage === "FINETUNE")).toBe(false);

    await lifecycle.complete(holder(last), result, [{ kind: "WEIGHTS", ...(await uploaded("module 3")) }]);
    const done = await t.db.run.findUniqueOrThrow({ where: { id: run.id }, include: { jobs: true } });
    expect(done.jobs.filter((j) => j.stage === "FINETUNE")).toHaveLength(1);
    const ft = done.jobs.find((j) => j.stage === "FINETUNE")!;
    expect(ft.queueJobId).not.toBeNull(); // enqueued in the same transaction
    expect(await boss.getJobById(queueOfJob(ft), ft.queueJobId!)).not.toBeNull();
  }, 30_000);

  it("a silent job with no retry left fails its module and its run (not RUNNING forever)", async () => {
    const noRetries = await openQueue(t.url, { retryLimit: 0 });
    try {
      const strict = new Dispatcher(t.db, noRetries, logger);
      const run = await modularRun({ placement: [{ labels: ["lane=dlq"] }], dispatcher: strict });
      const lc = new JobLifecycle(t.db, noRetries, strict, store, logger);
      const job = await lc.claimNext({ labels: ["lane=dlq"], shards: [], workerId: "gone" });
      await t.db.job.update({
        where: { id: job!.jobId },
        data: { heartbeatAt: new Date(Date.now() - 60_000) },
      });
      expect(await strict.failStaleJobs(30_000)).toEqual([job!.jobId]);
      const after = await t.db.run.findUniqueOrThrow({
        where: { id: run.id },
        include: { jobs: true, modules: true },
      });
      expect(after.state).toBe("FAILED");
      expect(after.error).toBe(`module ${job!.moduleIndex} failed: worker gone stopped heartbeating`);
      expect(after.jobs.find((j) => j.id === job!.jobId)!.state).toBe("FAILED");
      expect(after.modules.find((m) => m.index === job!.moduleIndex)!.state).toBe("FAILED");
    } finally {
      await noRetries.stop({ graceful: false });
    }
  }, 30_000);
});

describe("lock order", () => {
  it("a worker's events and a cancellation of its run never deadlock (both lock the run row first)", async () => {
    // Each progress batch updates its module row and bumps the run's event seq; cancelRun locks
    // the run and updates every module. Taken in opposite orders they deadlocked (40P01).
    for (let round = 0; round < 3; round++) {
      const run = await modularRun({ placement: [{ labels: ["lane=locks"] }] });
      const claimed = await drain({ labels: ["lane=locks"], shards: [] }, `w-locks-${round}`);
      expect(claimed).toHaveLength(4);
      let step = 0;
      const writers = claimed.map(async (job) => {
        const holder = { jobId: job.jobId, workerId: `w-locks-${round}`, attempt: job.attempt };
        for (let i = 0; i < 25; i++) {
          step++;
          await lifecycle.recordEvents(holder, [
            {
              type: "progress",
              step,
              totalSteps: 1000,
              loss: 1,
              lr: 0.001,
              imagesPerSecond: 1,
              etaSeconds: 1,
            },
          ]);
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 20 * round));
      await dispatcher.cancelRun(run.id);
      await Promise.all(writers); // a cancelled job's holder may still send what it had
      expect((await t.db.run.findUniqueOrThrow({ where: { id: run.id } })).state).toBe("CANCELLED");
    }
  }, 60_000);
});
