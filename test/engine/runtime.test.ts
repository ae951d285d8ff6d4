/**
 * Runtime: provider selection errors, session reuse, and training in a worker thread.
 */
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { ProviderUnavailableError } from "../../src/engine/runtime/providers.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";
import { TrainerThread } from "../../src/engine/runtime/trainer-thread.ts";
import { compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { clusterBatches, mlpSpec } from "./models.ts";

function tinyModel(): Uint8Array {
  const b = new GraphBuilder();
  b.output("y", b.relu(b.input("x", "float32", [3])));
  return toOnnxModel(b.graph);
}

describe("execution providers", () => {
  it("cuda on a machine without the CUDA provider library fails with instructions", async () => {
    const err = await EngineSession.create(tinyModel(), { provider: "cuda" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderUnavailableError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/CUDA provider is not installed/);
    expect(msg).toMatch(/libonnxruntime_providers_cuda\.so/);
    expect(msg).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
  });

  it("an unknown provider name is rejected", async () => {
    await expect(EngineSession.create(tinyModel(), { provider: "tpu" as never })).rejects.toThrow(
      /unknown execution provider "tpu"/,
    );
  });

  it("cpu with a configured thread count runs, and the session is reusable", async () => {
    const s = await EngineSession.create(tinyModel(), { provider: "cpu", intraOpNumThreads: 1 });
    for (let i = 0; i < 3; i++) {
      const out = await s.run({ x: f32([3], [-1, i, 2]) });
      expect([...out.y!.data]).toEqual([0, i, 2]);
    }
    await s.release();
  });
});

describe("TrainerThread", () => {
  it("trains in a worker thread with the same results as in-process, keeping the event loop free", async () => {
    const artifacts = compileTrainer(mlpSpec({ kind: "adamw" }), { loopSteps: [2] });
    const batches = clusterBatches(4, 21);
    const local = await Trainer.create(artifacts, { seed: 4, intraOpNumThreads: 1 });
    const thread = await TrainerThread.start(artifacts, { seed: 4, intraOpNumThreads: 1 });
    try {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const remote = [
        ...(await thread.trainSteps(batches.slice(0, 2), [1e-2, 1e-2])),
        await thread.trainStep(batches[2]!, 1e-2),
        await thread.trainStep(batches[3]!, 1e-2),
      ];
      clearInterval(timer);
      const ref = [];
      for (const batch of batches) ref.push(await local.trainStep(batch, 1e-2));
      expect(remote.map((r) => r.loss)).toEqual(ref.map((r) => r.loss));
      expect(await thread.step()).toBe(4);
      const state = await thread.exportState();
      expect(state.get("fc1.weight")).toEqual(local.parameters().get("fc1.weight"));
      expect(ticks).toBeGreaterThan(0);
      await expect(thread.trainStep({}, 1e-2)).rejects.toThrow(/missing input "x"/);
    } finally {
      await thread.close();
      await local.release();
    }
  });
});
