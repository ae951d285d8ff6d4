/**
 * End-to-end training through compiled step graphs on real ORT sessions: each optimizer learns
 * a small task, Loop mode reproduces single steps, state round-trips, frozen parameters stay
 * put while gradients pass through them.
 */
import { describe, expect, it } from "vitest";
import type { OptimizerConfig } from "../../src/engine/optim/types.ts";
import { compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { clusterBatches, MLP, mlpForward, mlpParams, mlpSpec } from "./models.ts";

const OPTIMIZERS: [OptimizerConfig, number][] = [
  [{ kind: "adamw", weightDecay: 0.05 }, 1e-2],
  [{ kind: "lamb", weightDecay: 0.02 }, 2e-2],
  [{ kind: "sgd", momentum: 0.9, nesterov: true, weightDecay: 1e-4 }, 5e-2],
];

describe("training a small MLP with softmax cross-entropy", () => {
  for (const [optimizer, lr] of OPTIMIZERS) {
    it(`loss decreases with ${optimizer.kind}`, async () => {
      const trainer = await Trainer.create(compileTrainer(mlpSpec(optimizer, { clipGradNorm: 5 })), {
        seed: 1,
      });
      const batches = clusterBatches(8);
      const losses: number[] = [];
      for (let i = 0; i < 40; i++)
        losses.push((await trainer.trainStep(batches[i % batches.length]!, lr)).loss);
      const first = losses.slice(0, 4).reduce((a, b) => a + b) / 4;
      const last = losses.slice(-4).reduce((a, b) => a + b) / 4;
      expect(last).toBeLessThan(0.5 * first);
      const held = clusterBatches(1, 7, 40)[0]!; // same centres, a bigger fresh batch, symbolic-N eval graph
      const evalResult = await trainer.evaluate(held);
      expect(evalResult.outputs.logits!.shape).toEqual([40, MLP.classes]);
      expect(evalResult.metrics.acc).toBeGreaterThan(0.8);
      expect(trainer.step).toBe(40);
      await trainer.release();
    });
  }

  for (const [optimizer, lr] of OPTIMIZERS) {
    it(`Loop mode (4 steps in one run) equals 4 single steps — ${optimizer.kind}`, async () => {
      const artifacts = compileTrainer(mlpSpec(optimizer, { clipGradNorm: 1 }), { loopSteps: [4] });
      const single = await Trainer.create(artifacts, { seed: 3 });
      const looped = await Trainer.create(artifacts, { seed: 3 });
      const batches = clusterBatches(8, 11);
      const lrs = [lr, lr * 0.9, lr * 0.8, lr * 0.7, lr * 0.6, lr * 0.5, lr * 0.4, lr * 0.3];
      const a: number[] = [];
      for (const [i, batch] of batches.entries()) a.push((await single.trainStep(batch, lrs[i]!)).loss);
      const b = [
        ...(await looped.trainSteps(batches.slice(0, 4), lrs.slice(0, 4))),
        ...(await looped.trainSteps(batches.slice(4), lrs.slice(4))),
      ];
      expect(b.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      for (const [i, r] of b.entries()) expect(Math.abs(r.loss - a[i]!)).toBeLessThanOrEqual(1e-6);
      const pa = single.parameters();
      for (const [name, v] of looped.parameters()) {
        const ref = pa.get(name)!;
        for (let i = 0; i < v.length; i++) expect(Math.abs(v[i]! - ref[i]!)).toBeLessThanOrEqual(1e-6);
      }
      await single.release();
      await looped.release();
    });
  }

  it("exportState / importState resume the exact same trajectory", async () => {
    const artifacts = compileTrainer(mlpSpec({ kind: "adamw" }));
    const batches = clusterBatches(5, 5);
    const original = await Trainer.create(artifacts, { seed: 9 });
    for (const batch of batches.slice(0, 3)) await original.trainStep(batch, 1e-2);
    const saved = original.exportState();
    expect(saved.get("optimizer.step")![0]).toBe(3);
    expect(saved.has("optimizer.exp_avg.fc1.weight")).toBe(true);
    expect(original.stateShapes().get("optimizer.exp_avg_sq.head.weight")).toEqual([MLP.classes, MLP.hidden]);

    const resumed = await Trainer.create(artifacts, { seed: 12345 });
    resumed.importState(saved);
    expect(resumed.step).toBe(3);
    for (const batch of batches.slice(3)) {
      const x = await original.trainStep(batch, 1e-2);
      const y = await resumed.trainStep(batch, 1e-2);
      expect(y.loss).toBe(x.loss);
    }
    await original.release();
    await resumed.release();
  });

  it("frozen parameters stay fixed while gradients flow through them to earlier layers", async () => {
    const frozenNames = new Set(["norm.weight", "norm.bias", "head.weight"]);
    const params = mlpParams().map((p) => (frozenNames.has(p.name) ? { ...p, trainable: false } : p));
    const artifacts = compileTrainer({ ...mlpSpec({ kind: "adamw" }), params });
    const trainer = await Trainer.create(artifacts, { seed: 2 });
    expect(trainer.layout.frozenSize).toBe(2 * MLP.hidden + MLP.classes * MLP.hidden);
    const before = trainer.parameters();
    for (const batch of clusterBatches(3)) await trainer.trainStep(batch, 1e-2);
    const after = trainer.parameters();
    for (const name of frozenNames) expect(after.get(name)).toEqual(before.get(name));
    // fc1 sits *before* the frozen norm and head: it only learns if gradients pass through them
    expect(after.get("fc1.weight")).not.toEqual(before.get("fc1.weight"));
    expect(after.get("head.bias")).not.toEqual(before.get("head.bias"));
    const state = trainer.exportState();
    expect(state.has("optimizer.exp_avg.head.weight")).toBe(false);
    expect(state.has("head.weight")).toBe(true);
    await trainer.release();
  });

  it("rejects a batch with the wrong shape, naming the input", async () => {
    const trainer = await Trainer.create(compileTrainer(mlpSpec({ kind: "sgd" }), { eval: false }));
    const [batch] = clusterBatches(1, 1, 8);
    await expect(trainer.trainStep(batch!, 0.1)).rejects.toThrow(
      /batch input "x": expected float32\[16,4,8\]/,
    );
    await trainer.release();
  });

  it("uses the forward's parameters lazily: an unused parameter gets a zero gradient", async () => {
    const params = [
      ...mlpParams(),
      { name: "unused.weight", shape: [3, 3], init: { kind: "ones" as const } },
    ];
    const trainer = await Trainer.create(
      compileTrainer({ ...mlpSpec({ kind: "sgd", momentum: 0 }), params, forward: mlpForward }),
    );
    await trainer.trainStep(clusterBatches(1)[0]!, 0.1);
    expect([...trainer.parameters().get("unused.weight")!]).toEqual(new Array(9).fill(1));
    await trainer.release();
  });
});
