/**
 * The job lifecycle against the real queue (pg-boss on the test database): placement (labels,
 * shard pins) decides who may claim what, and heartbeats answer continue / cancel / taken over.
 * No training here: the claims are what is tested.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type PgBoss from "pg-boss";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { Dispatcher } from "../../src/platform/dispatch/dispatcher.ts";
import { mayTake, placementOfQueue, queueNameFor } from "../../src/platform/queue/placement.ts";
import { openQueue } from "../../src/platform/queue/queue.ts";
import { JobLifecycle, JobNotHeldError } from "../../src/platform/worker/job-lifecycle.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
let boss: PgBoss;
let dispatcher: Dispatcher;
let lifecycle: JobLifecycle;
const anyWorker = { labels: [], shards: [] };

beforeAll(async () => {
  boss = await openQueue(t.url);
  const logger = pino({ level: "silent" });
  dispatcher = new Dispatcher(t.db, boss, logger);
  const store = new LocalArtifactStore(join(mkdtempSync(join(tmpdir(), "incubator-lifecycle-")), "a"));
  lifecycle = new JobLifecycle(t.db, boss, dispatcher, store, logger);
});

afterAll(async () => {
  await boss?.stop({ graceful: false });
});

/** An INCUBATION run with a registered meta model: runCreated queues its 4 modular jobs at once. */
async function modularRun(options: { decentralized?: boolean; placement?: unknown } = {}) {
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
  await dispatcher.runCreated(run.id);
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
