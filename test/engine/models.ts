/** Small models and data for the engine's training tests. */

import { VIT_DEFAULTS, type VitConfig } from "../../src/engine/models/vit.ts";
import type { OptimizerConfig } from "../../src/engine/optim/types.ts";
import { Rng } from "../../src/engine/rng.ts";
import type { ParamSpec } from "../../src/engine/train/params.ts";
import type { ForwardContext, ForwardResult, TrainSpec } from "../../src/engine/train/spec.ts";
import type { Batch } from "../../src/engine/train/trainer.ts";

export const MLP = { batch: 16, tokens: 4, dim: 8, hidden: 16, classes: 4 };

/** Token-wise MLP → LayerNorm → mean over tokens → linear head → CE with label smoothing. */
export function mlpParams(): ParamSpec[] {
  const { dim, hidden, classes } = MLP;
  return [
    { name: "fc1.weight", shape: [hidden, dim], init: { kind: "truncNormal", std: 0.3 } },
    { name: "fc1.bias", shape: [hidden] },
    { name: "norm.weight", shape: [hidden], init: { kind: "ones" } },
    { name: "norm.bias", shape: [hidden] },
    { name: "head.weight", shape: [classes, hidden], init: { kind: "truncNormal", std: 0.3 } },
    { name: "head.bias", shape: [classes] },
  ];
}

export function mlpForward({ b, param, input }: ForwardContext): ForwardResult {
  const x = input("x"); // [B, T, D]
  const h = b.gelu(b.add(b.matmul(x, param("fc1.weight"), { transB: true }), param("fc1.bias")));
  const n = b.layerNorm(h, param("norm.weight"), param("norm.bias"));
  const pooled = b.reduceMean(n, [1]);
  const logits = b.add(b.matmul(pooled, param("head.weight"), { transB: true }), param("head.bias"));
  const labels = input("y");
  const loss = b.softmaxCrossEntropy(logits, labels, 0.1);
  const acc = b.meanAll(b.cast(b.equal(b.argMax(logits, -1), labels), "float32"));
  return { loss, metrics: { acc }, outputs: { logits } };
}

export function mlpSpec(optimizer: OptimizerConfig, extra: Partial<TrainSpec> = {}): TrainSpec {
  const { batch, tokens, dim } = MLP;
  return {
    params: mlpParams(),
    inputs: [
      { name: "x", dtype: "float32", shape: [batch, tokens, dim] },
      { name: "y", dtype: "int64", shape: [batch] },
    ],
    evalInputs: [
      { name: "x", dtype: "float32", shape: ["N", tokens, dim] },
      { name: "y", dtype: "int64", shape: ["N"] },
    ],
    forward: mlpForward,
    optimizer,
    ...extra,
  };
}

/** A learnable task: the class decides the mean of every token's features. */
export function clusterBatches(count: number, seed = 7, batch = MLP.batch): Batch[] {
  const { tokens, dim, classes } = MLP;
  const rng = new Rng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => rng.normal()));
  return Array.from({ length: count }, () => {
    const x = new Float32Array(batch * tokens * dim);
    const y = new BigInt64Array(batch);
    for (let i = 0; i < batch; i++) {
      const c = rng.int(classes);
      y[i] = BigInt(c);
      for (let t = 0; t < tokens; t++)
        for (let d = 0; d < dim; d++) x[(i * tokens + t) * dim + d] = centres[c]![d]! + 0.8 * rng.normal();
    }
    return {
      x: { dtype: "float32", shape: [batch, tokens, dim], data: x },
      y: { dtype: "int64", shape: [batch], data: y },
    } as Batch;
  });
}

/** A ViT small enough for exact tests (8×8 images, 2 patches a side, width 32). */
export function tinyVit(overrides: Partial<VitConfig> = {}): VitConfig {
  return {
    ...VIT_DEFAULTS,
    imageSize: 8,
    channels: 3,
    patchSize: 4,
    width: 32,
    depth: 2,
    heads: 2,
    mlpRatio: 2,
    numClasses: 5,
    ...overrides,
  };
}
