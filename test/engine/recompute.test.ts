/**
 * Activation recomputation (autodiff/recompute.ts) on a real ORT session: the backward pass
 * reads no activation from inside a block, and the gradients, losses and updates are those of
 * the ordinary graph — on an MT hybrid (frozen meta blocks around a trainable module) with
 * drop-path masks that drop whole branches.
 *
 * Tolerance, not bit-identity, is asserted: the copy computes the same ops on the same values
 * (its input is x + 0·a, exactly x), and on this model the gradients came out bit-identical, but
 * ORT may fuse the forward nodes differently once their outputs feed only the next forward node
 * and not the backward too, and a fused kernel may round the last bit differently.
 */
import { describe, expect, it } from "vitest";
import type { Node, Value } from "../../src/engine/ir/graph.ts";
import { dropMaskShape, INPUT, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { vitParamSpecs } from "../../src/engine/models/vit.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { Rng } from "../../src/engine/rng.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import { f32, type HostTensor } from "../../src/engine/runtime/tensor.ts";
import type { TrainSpec } from "../../src/engine/train/spec.ts";
import { type Batch, compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { buildHybrid, hybridInitialValues } from "../../src/incubation/hybrid.ts";
import { metaConfigFor } from "../../src/incubation/modules.ts";
import { SMALL_SPLIT, SMALL_TARGET } from "../helpers/incubation.ts";
import { specGradientGraph } from "./spec-gradients.ts";

const TARGET = SMALL_TARGET;
const META = metaConfigFor(TARGET, SMALL_SPLIT.length);
const BATCH = 6;
const HYBRID = buildHybrid(TARGET, META, SMALL_SPLIT, 1);

function hybridSpec(recomputeActivations: boolean, optimizer: TrainSpec["optimizer"]): TrainSpec {
  return vitClassifierSpec(TARGET, {
    batch: BATCH,
    optimizer,
    params: HYBRID.params,
    plan: HYBRID.plan,
    dropPathRate: 0.3,
    labelSmoothing: 0.1,
    recomputeActivations,
  });
}

/** Random images and labels, and drop-path masks with some branches dropped (0) and others kept (1/keep). */
function batchOf(seed: number): Batch {
  const rng = new Rng(seed);
  const { channels: c, imageSize: s, numClasses } = TARGET;
  const shape = dropMaskShape(HYBRID.depth, BATCH);
  return {
    images: f32(
      [BATCH, c, s, s],
      new Float32Array(BATCH * c * s * s).map(() => rng.normal()),
    ),
    labels: {
      dtype: "int64",
      shape: [BATCH],
      data: BigInt64Array.from({ length: BATCH }, () => BigInt(rng.int(numClasses))),
    },
    [INPUT.dropMask]: f32(
      shape,
      new Float32Array(shape.reduce((a, b) => a * b)).map((_, i) => (i % 5 === 2 ? 0 : 1 / 0.8)),
    ),
  };
}

const metaWeights = (() => {
  const rng = new Rng(5);
  return new Map(
    vitParamSpecs(META).map((s) => [
      s.name,
      new Float32Array(s.shape.reduce((a, b) => a * b, 1)).map(() => 0.2 * rng.normal()),
    ]),
  );
})();

/**
 * The loss and d loss / d trainable parameter as graph outputs: the spec's forward with every
 * parameter its own graph input, then `gradients` with recomputation on or off.
 */
function gradientGraph(recompute: boolean, spec = hybridSpec(recompute, { kind: "sgd", momentum: 0 })) {
  return { spec, ...specGradientGraph(spec, { recompute }) };
}

async function runGradients(recompute: boolean, batch: Batch): Promise<Record<string, HostTensor>> {
  const { b, spec } = gradientGraph(recompute);
  const session = await EngineSession.create(toOnnxModel(b.graph));
  const init = hybridInitialValues(HYBRID, metaWeights);
  const rng = new Rng(9);
  const feeds: Record<string, HostTensor> = { ...(batch as Record<string, HostTensor>) };
  for (const p of spec.params) {
    const n = p.shape.reduce((a, c) => a * c, 1);
    feeds[`p.${p.name}`] = f32(
      p.shape,
      init.get(p.name) ?? new Float32Array(n).map(() => 0.2 * rng.normal()),
    );
  }
  return session.run(feeds);
}

/** Largest |a − b| / (|b| + 1e-3) over two float tensors. */
function worstRelative(a: HostTensor, b: HostTensor): number {
  let worst = 0;
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  expect(x.length).toBe(y.length);
  for (let i = 0; i < x.length; i++)
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / (Math.abs(y[i]!) + 1e-3));
  return worst;
}

describe("activation recomputation", () => {
  it("the backward pass reads no value from inside a block; without it, it does", () => {
    for (const recompute of [false, true]) {
      const { b, forwardNodes } = gradientGraph(recompute);
      // Inner values: outputs of a block's nodes that depend on its input, bar its output.
      const inner = new Set<Value>();
      for (const s of b.graph.segments) {
        const dependent = new Set<Value>([s.input]);
        for (const n of b.graph.nodes.slice(s.from, s.to))
          if (n.inputs.some((v) => dependent.has(v))) for (const v of n.outputs) dependent.add(v);
        for (const v of b.graph.nodes[s.to - 1]!.outputs) dependent.delete(v);
        dependent.delete(s.input);
        for (const v of dependent) inner.add(v);
      }
      const backwardReads = b.graph.nodes
        .slice(forwardNodes)
        .filter((n) => n.inputs.some((v) => inner.has(v)));
      if (recompute) expect(backwardReads).toEqual([]);
      else expect(backwardReads.length).toBeGreaterThan(10);
    }
  });

  it("recomputes a block only after the later block's weight gradients are done", () => {
    // ORT runs nodes in a depth-first order from the outputs; without this dependency it left
    // every weight gradient, and so every recomputed activation, to the end of the step.
    // recomputeActivations also keeps each block's norm1 in its own segment (fuseResidualNorm off).
    const spec = vitClassifierSpec(TARGET, {
      batch: BATCH,
      optimizer: { kind: "sgd", momentum: 0 },
      recomputeActivations: true,
    });
    const { b, forwardNodes } = gradientGraph(true, spec);
    const ancestors = (v: Value): Set<Node> => {
      const seen = new Set<Node>();
      const stack = [v];
      while (stack.length) {
        const n = stack.pop()!.producer;
        if (n && !seen.has(n)) {
          seen.add(n);
          stack.push(...n.inputs);
        }
      }
      return seen;
    };
    const output = (name: string) => b.graph.outputs.find((o) => o.name === name)!.value;
    const backward = new Set(b.graph.nodes.slice(forwardNodes));
    // Block i is segment i; the recomputed copy of its norm1 reads the segment's input (as
    // input + 0·a, see recompute.ts).
    for (let k = 1; k < TARGET.depth; k++) {
      const blockInput = b.graph.segments[k - 1]!.input;
      const copyNorm = b.graph.nodes.find(
        (n) => backward.has(n) && n.op === "layerNorm" && n.inputs[0]!.producer?.inputs[0] === blockInput,
      )!;
      expect(copyNorm).toBeDefined();
      const waitsFor = ancestors(copyNorm.outputs[0]!);
      const weightGradient = [...ancestors(output(`grad.blocks.${k}.mlp.fc2.weight`))].filter(
        (n) => backward.has(n) && n.op === "gemm",
      );
      expect(weightGradient.length).toBeGreaterThan(0);
      for (const n of weightGradient) expect(waitsFor.has(n)).toBe(true);
    }
  });

  it("gives the gradients of the ordinary graph on an MT hybrid with drop-path", async () => {
    const batch = batchOf(3);
    const [off, on] = [await runGradients(false, batch), await runGradients(true, batch)];
    const { trainable } = gradientGraph(true);
    expect(trainable.some((n) => n.startsWith("meta."))).toBe(false); // the meta blocks are frozen
    expect(on.loss!.data[0]).toBeCloseTo(off.loss!.data[0] as number, 6);
    let worst = 0;
    for (const name of trainable) {
      const g = off[`grad.${name}`]!;
      expect((g.data as Float32Array).some((v) => v !== 0)).toBe(true);
      worst = Math.max(worst, worstRelative(on[`grad.${name}`]!, g));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it("trains the same few steps (losses and parameters) with AdamW, in single steps and in an ONNX Loop", async () => {
    const batches = [0, 1, 2, 3].map((i) => batchOf(10 + i));
    const lr = 1e-3;
    const run = async (recompute: boolean) => {
      const trainer = await Trainer.create(
        compileTrainer(hybridSpec(recompute, { kind: "adamw", weightDecay: 0.05 }), {
          eval: false,
          loopSteps: recompute ? [2] : [],
        }),
        { seed: 1, initial: hybridInitialValues(HYBRID, metaWeights) },
      );
      const losses: number[] = [];
      // On: two Loop runs of two steps (segments inside a loop body); off: four single steps.
      if (recompute)
        for (const pair of [batches.slice(0, 2), batches.slice(2)])
          losses.push(...(await trainer.trainSteps(pair, [lr, lr])).map((r) => r.loss));
      else for (const batch of batches) losses.push((await trainer.trainStep(batch, lr)).loss);
      const params = trainer.parameters();
      await trainer.release();
      return { losses, params };
    };
    const off = await run(false);
    const on = await run(true);
    for (const [i, l] of on.losses.entries()) expect(Math.abs(l - off.losses[i]!)).toBeLessThan(1e-5);
    for (const [name, v] of on.params) {
      const ref = off.params.get(name)!;
      for (let i = 0; i < v.length; i++) expect(Math.abs(v[i]! - ref[i]!)).toBeLessThan(1e-5);
    }
  });
});
