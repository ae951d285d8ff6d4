/**
 * Runs dispatched through the real queue (pg-boss on the test database) to real worker
 * processes (`incubator worker`), which train with the engine in `incubator job` children.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import type PgBoss from "pg-boss";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { VIT_DEFAULTS, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { Dispatcher } from "../../src/platform/dispatch/dispatcher.ts";
import { readRunEvents } from "../../src/platform/events/event-log.ts";
import { metaModelConfig } from "../../src/platform/meta-model-source.ts";
import { openQueue } from "../../src/platform/queue/queue.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { createRunRows } from "../helpers/rows.ts";
import { TINY_VIT, tinyOverrides } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-dispatch-"));
let boss: PgBoss;
let dispatcher: Dispatcher;
const workers: Spawned[] = [];

function startWorker(id: string): Spawned {
  const w = spawnIncubator(
    ["worker", "--id", id, "--threads", "1", "--heartbeat-ms", "500", "--stale-after-ms", "4000"],
    {
      DATABASE_URL: t.url,
      DATA_DIR: dataDir,
      LOG_LEVEL: "info",
    },
  );
  workers.push(w);
  return w;
}

beforeAll(async () => {
  boss = await openQueue(t.url);
  dispatcher = new Dispatcher(t.db, boss, pino({ level: "silent" }));
});

afterAll(async () => {
  for (const w of workers) w.child.kill("SIGKILL");
  await boss?.stop({ graceful: false });
});

const SYNTH = { format: "synthetic", numClasses: 4, channels: 3, imageSize: 8, seed: 2 };

async function createRun(
  name: string,
  steps: { pretrain: number; modular: number; finetune: number },
  extra: Record<string, unknown> = {},
) {
  const { run } = await createRunRows(t.db, {
    name,
    architecture: { imageSize: 8, channels: 3, width: 32, heads: 2, numClasses: 4 },
    dataset: { options: { ...SYNTH, length: 512 }, numClasses: 4, trainSize: 512, testSize: 512 },
    run: {
      seed: 1,
      overrides: { ...tinyOverrides({ ...steps, e2e: 0 }), ...extra },
    },
    modules: true,
  });
  return run;
}

async function waitForRun(runId: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await t.db.run.findUniqueOrThrow({ where: { id: runId } });
    if (run.state === "SUCCEEDED" || run.state === "FAILED" || run.state === "CANCELLED") return run;
    if (Date.now() > deadline)
      throw new Error(
        `run still ${run.state} after ${timeoutMs} ms:\n${workers.map((w) => w.output().slice(-2000)).join("\n---\n")}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe("dispatching an incubation run to two worker processes", () => {
  it("runs PT → 4 MT in parallel on both workers → FT, with progress events and a loadable ONNX model", async () => {
    const a = startWorker("worker-a");
    const b = startWorker("worker-b");
    await Promise.all([a.waitFor(/worker ready/), b.waitFor(/worker ready/)]);
    const run = await createRun("dispatch-happy", { pretrain: 30, modular: 40, finetune: 30 });
    await dispatcher.runCreated(run.id);
    const done = await waitForRun(run.id, 150_000);
    expect(done.state).toBe("SUCCEEDED");

    const jobs = await t.db.job.findMany({
      where: { runId: run.id },
      include: { module: true },
      orderBy: { createdAt: "asc" },
    });
    expect(jobs.map((j) => j.stage)).toEqual([
      "PRETRAIN",
      "MODULAR",
      "MODULAR",
      "MODULAR",
      "MODULAR",
      "FINETUNE",
    ]);
    expect(jobs.every((j) => j.state === "SUCCEEDED")).toBe(true);
    const mtWorkers = new Set(jobs.filter((j) => j.stage === "MODULAR").map((j) => j.workerId));
    expect(mtWorkers).toEqual(new Set(["worker-a", "worker-b"]));

    const events = await readRunEvents(t.db, run.id, 0, { limit: 10_000 });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    for (const m of [0, 1, 2, 3]) {
      const progress = events.filter((e) => e.type === "PROGRESS" && e.moduleIndex === m);
      expect(progress.length).toBeGreaterThan(0);
      expect(progress.at(-1)).toMatchObject({ step: 40 });
    }
    // Stage order: the first MT progress comes after PT's, FT's after every module's.
    const firstOf = (stage: string) => events.findIndex((e) => e.type === "PROGRESS" && e.stage === stage);
    const lastOf = (stage: string) => events.findLastIndex((e) => e.type === "PROGRESS" && e.stage === stage);
    expect(lastOf("PRETRAIN")).toBeLessThan(firstOf("MODULAR"));
    expect(lastOf("MODULAR")).toBeLessThan(firstOf("FINETUNE"));
    expect(events.at(-1)).toMatchObject({ type: "RUN_STATE", moduleIndex: null, state: "SUCCEEDED" });

    const meta = await t.db.metaModel.findFirstOrThrow({ where: { sourceRunId: run.id } });
    expect(meta.numModules).toBe(4);
    expect(meta.source).toEqual({ kind: "pretrain-run", runId: run.id });
    // the run's target architecture with one block per module
    expect(metaModelConfig(meta)).toEqual({ ...VIT_DEFAULTS, ...TINY_VIT, depth: 4 });
    const onnx = await t.db.artifact.findFirstOrThrow({ where: { runId: run.id, kind: "FINAL_MODEL_ONNX" } });
    const path = await new LocalArtifactStore(join(dataDir, "artifacts")).getFile(onnx.sha256);
    const session = await ort.InferenceSession.create(path);
    const out = await session.run({
      images: new ort.Tensor("float32", new Float32Array(2 * 3 * 8 * 8).fill(0.2), [2, 3, 8, 8]),
    });
    expect(out.logits!.dims).toEqual([2, 4]);
    await session.release();
    expect((done.result as { evalAccuracy: number }).evalAccuracy).toBeGreaterThan(0);
  }, 200_000);

  it("a worker killed with SIGKILL mid-module: the job is retried elsewhere and resumes from its checkpoint", async () => {
    const run = await createRun("dispatch-fault", { pretrain: 20, modular: 120, finetune: 20 });
    // Only one worker at first, so we know who holds the module; a second joins after the kill.
    for (const w of workers) w.child.kill("SIGKILL");
    const victim = startWorker("victim");
    await victim.waitFor(/worker ready/);
    await dispatcher.runCreated(run.id);
    // Wait until module 0 has a checkpoint past step 0, then kill its worker.
    const deadline = Date.now() + 90_000;
    for (;;) {
      const ckpt = await t.db.artifact.findFirst({
        where: { runId: run.id, kind: "CHECKPOINT", job: { stage: "MODULAR" } },
      });
      if (ckpt) break;
      if (Date.now() > deadline) throw new Error(`no module checkpoint: ${victim.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    victim.child.kill("SIGKILL");
    const rescuer = startWorker("rescuer");
    await rescuer.waitFor(/worker ready/);
    const done = await waitForRun(run.id, 150_000);
    expect(done.state).toBe("SUCCEEDED");

    const retried = await t.db.job.findFirstOrThrow({
      where: { runId: run.id, stage: "MODULAR", attempts: { gte: 2 } },
      include: { module: true },
    });
    expect(retried.workerId).toBe("rescuer");
    const events = await readRunEvents(t.db, run.id, 0, { limit: 10_000 });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1)); // no gap, no repeat
    const starts = events.flatMap((e) =>
      e.type === "JOB_STARTED" && e.moduleIndex === retried.module!.index ? [e] : [],
    );
    expect(starts.length).toBe(2);
    expect(starts[0]!.startStep).toBe(0);
    expect(starts[1]!.startStep).toBeGreaterThan(0); // resumed, not restarted
    expect(
      events.some(
        (e) => e.type === "JOB_STATE" && e.state === "QUEUED" && /stopped heartbeating/.test(e.reason ?? ""),
      ),
    ).toBe(true);
  }, 240_000);
});

describe("failures and cancellation", () => {
  it("a module whose loss becomes NaN fails without retries, and the run says which module, why and at which step", async () => {
    for (const w of workers) w.child.kill("SIGKILL");
    const w = startWorker("nan-worker");
    await w.waitFor(/worker ready/);
    // No PT steps (the meta model stays at its init), then a learning rate no module survives.
    const run = await createRun("dispatch-nan", { pretrain: 0, modular: 30, finetune: 10 }, { baseLr: 1e30 });
    await dispatcher.runCreated(run.id);
    const done = await waitForRun(run.id, 90_000);
    expect(done.state).toBe("FAILED");
    expect(done.error).toMatch(/^module \d failed: loss became (NaN|Infinity|-Infinity) at step \d+ of 30/);
    const failed = await t.db.module.findMany({ where: { runId: run.id, state: "FAILED" } });
    expect(failed.length).toBeGreaterThan(0);
    const jobs = await t.db.job.findMany({ where: { runId: run.id, state: "FAILED" } });
    expect(jobs.every((j) => j.attempts === 1)).toBe(true); // a NaN is not retried
  }, 120_000);

  it("cancellation reaches the running worker within seconds and frees it", async () => {
    const w = workers.at(-1)!;
    const run = await createRun("dispatch-cancel", { pretrain: 10, modular: 100_000, finetune: 10 });
    await dispatcher.runCreated(run.id);
    const deadline = Date.now() + 60_000;
    while (!(await t.db.module.findFirst({ where: { runId: run.id, state: "RUNNING", step: { gt: 0 } } }))) {
      if (Date.now() > deadline) throw new Error(`module never started: ${w.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const cancelledAt = Date.now();
    await dispatcher.cancelRun(run.id);
    await w.waitFor(/cancellation reached the worker/, 10_000);
    // The worker is free again: it takes the next run's first job.
    const next = await createRun("dispatch-after-cancel", { pretrain: 5, modular: 5, finetune: 5 });
    await dispatcher.runCreated(next.id);
    expect((await waitForRun(next.id, 90_000)).state).toBe("SUCCEEDED");
    expect(Date.now() - cancelledAt).toBeLessThan(90_000);
    const after = await t.db.run.findUniqueOrThrow({ where: { id: run.id } });
    expect(after.state).toBe("CANCELLED");
  }, 180_000);
});

describe("incubating with an existing meta model", () => {
  it("skips pre-training: 4 modular jobs read the registered (narrower) weights through width adapters, then fine-tuning", async () => {
    const w = startWorker("meta-worker");
    await w.waitFor(/worker ready/);
    // The target is 32 wide: a 16-wide meta model, so modules train wrapped in width adapters.
    const meta = { ...VIT_DEFAULTS, ...TINY_VIT, width: 16 };
    const specs = vitParamSpecs(meta);
    const rng = new Rng(9);
    const weights = new Map(
      specs.map(
        (s) =>
          [
            s.name,
            new Float32Array(s.shape.reduce((a, b) => a * b, 1)).map(() => rng.normal() * 0.02),
          ] as const,
      ),
    );
    const path = join(dataDir, "registered-meta.safetensors");
    saveWeights(path, { parameters: weights, shapes: specs });
    const stored = await new LocalArtifactStore(join(dataDir, "artifacts")).putFile(path);
    const artifact = await t.db.artifact.create({
      data: { kind: "META_WEIGHTS", sha256: stored.sha256, sizeBytes: BigInt(stored.sizeBytes) },
    });
    const metaModel = await t.db.metaModel.create({
      data: {
        name: "registered",
        width: 16,
        heads: 2,
        patchSize: 4,
        imageSize: 8,
        numModules: 4,
        numClasses: meta.numClasses,
        checkpointId: artifact.id,
      },
    });
    const created = await createRun("dispatch-registered-meta", { pretrain: 50, modular: 15, finetune: 10 });
    const run = await t.db.run.update({ where: { id: created.id }, data: { metaModelId: metaModel.id } });
    await dispatcher.runCreated(run.id);
    const done = await waitForRun(run.id, 120_000);
    expect(done.state, w.output().slice(-1500)).toBe("SUCCEEDED");
    const stages = (await t.db.job.findMany({ where: { runId: run.id }, orderBy: { createdAt: "asc" } })).map(
      (j) => j.stage,
    );
    expect(stages).toEqual(["MODULAR", "MODULAR", "MODULAR", "MODULAR", "FINETUNE"]);
    const modular = await t.db.job.findMany({
      where: { runId: run.id, stage: "MODULAR" },
      include: { module: true },
      orderBy: { module: { index: "asc" } },
    });
    expect(modular.map((j) => (j.spec as { meta?: { width: number } }).meta?.width)).toEqual([
      16, 16, 16, 16,
    ]);
    const adapters = modular.map((j) =>
      (j.result as { adapters?: { name: string }[] }).adapters?.map((a) => a.name),
    );
    expect(adapters).toEqual([
      ["adapters.out"],
      ["adapters.in", "adapters.out"],
      ["adapters.in", "adapters.out"],
      ["adapters.in"],
    ]);
  }, 150_000);
});
