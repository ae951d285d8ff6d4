/**
 * Deep Incubation end to end on the synthetic dataset (CI-sized), and exact resume of a job.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { loadWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { vitParamSpecs } from "../../src/engine/models/vit.ts";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { incubate, type StageEvent } from "../../src/incubation/incubate.ts";
import { JobCancelledError, type JobEvent, runJob } from "../../src/incubation/job.ts";

const tmp = () => mkdtempSync(join(tmpdir(), "incubator-pipeline-"));

describe("incubator incubate on the synthetic dataset", () => {
  it("pre-trains, trains K modules, assembles, fine-tunes and clearly beats chance", async () => {
    const config = loadRunConfig("demo");
    const outDir = tmp();
    const events: StageEvent[] = [];
    const result = await incubate({ ...config, outDir, threads: 2 }, (e) => events.push(e));

    // 10 classes: chance is 10 %.
    expect(result.accuracy).toBeGreaterThan(0.3);
    expect(Object.keys(result.stages)).toEqual([
      "pretrain",
      "module-0",
      "module-1",
      "module-2",
      "module-3",
      "assemble",
      "finetune",
    ]);
    const jobsInOrder = [...new Set(events.filter((e) => e.type === "start").map((e) => e.job))];
    expect(jobsInOrder).toEqual(["pretrain", "module-0", "module-1", "module-2", "module-3", "finetune"]);
    const results = JSON.parse(readFileSync(join(outDir, "results.json"), "utf8"));
    expect(results.accuracy).toBe(result.accuracy);
    expect(result.criticalPathSeconds).toBeLessThan(result.totalWallSeconds);

    // The final model is exactly the target's parameters: nothing of the meta model survives.
    const final = loadWeights(result.weightsPath, { expect: vitParamSpecs(config.target) });
    expect([...final.keys()].some((n) => n.startsWith("meta."))).toBe(false);
    // The exported ONNX model loads in a fresh ONNX Runtime session and predicts.
    const session = await ort.InferenceSession.create(result.onnxPath);
    const images = new Float32Array(3 * 3 * 16 * 16).fill(0.1);
    const out = await session.run({ images: new ort.Tensor("float32", images, [3, 3, 16, 16]) });
    expect(out.logits!.dims).toEqual([3, 10]);
    await session.release();
    // Module weights hold only what the module owns.
    const m1 = loadWeights(result.moduleWeights![1]!);
    expect([...m1.keys()].every((n) => /^blocks\.[23]\./.test(n))).toBe(true);
  }, 180_000);
});

describe("a training job", () => {
  const config = loadRunConfig("demo", ["recipe.steps.e2e=24", "recipe.batchSize=32"]);
  const spec = (outDir: string) => ({
    phase: "e2e" as const,
    target: config.target,
    split: config.split,
    dataset: config.dataset,
    recipe: { ...config.recipe, dropPath: { ...config.recipe.dropPath, e2e: 0.1 } },
    seed: 3,
    outDir,
    checkpointEvery: 8,
    threads: 1,
  });

  it("cancelled mid-way and resumed from its checkpoint ends exactly as an uninterrupted run", async () => {
    const straightDir = tmp();
    const straight = await runJob(spec(straightDir));

    const resumedDir = tmp();
    const controller = new AbortController();
    const seen: JobEvent[] = [];
    await expect(
      runJob(spec(resumedDir), {
        signal: controller.signal,
        progressIntervalMs: 0,
        onEvent: (e) => {
          seen.push(e);
          if (e.type === "progress" && e.step === 13) controller.abort();
        },
      }),
    ).rejects.toThrow(JobCancelledError);
    const checkpoint = join(resumedDir, "e2e.checkpoint.safetensors");
    expect(existsSync(checkpoint)).toBe(true);
    expect(seen.filter((e) => e.type === "checkpoint").map((e) => (e as { step: number }).step)).toEqual([
      8, 13,
    ]);

    const events: JobEvent[] = [];
    const resumed = await runJob(
      { ...spec(resumedDir), resumeFrom: checkpoint },
      { onEvent: (e) => events.push(e) },
    );
    expect(events[0]).toMatchObject({ type: "start", startStep: 13 });
    expect(resumed.finalLoss).toBe(straight.finalLoss);
    const a = loadWeights(straight.weightsPath);
    const b = loadWeights(resumed.weightsPath);
    for (const [name, value] of a)
      expect(Buffer.from(b.get(name)!.buffer).equals(Buffer.from(value.buffer))).toBe(true);
  }, 120_000);

  it("stops with the step and the fix when the loss becomes NaN", async () => {
    const bad = { ...spec(tmp()), recipe: { ...config.recipe, baseLr: 1e30 } };
    await expect(runJob(bad)).rejects.toThrow(/loss became NaN at step \d+ of 24 .*lower the learning rate/);
  }, 60_000);
});
