/**
 * Every VJP rule against central finite differences, through real ONNX Runtime sessions.
 *
 * float64 wherever ORT's CPU provider has double kernels; float32 (with a looser tolerance) for
 * erf and gelu — ORT has no double Erf, and our float64 erf lowering computes in float32 — and
 * for the float32-only lowerings (LayerNormalization, com.microsoft Gelu / FusedMatMul).
 */
import { afterAll, describe, expect, it } from "vitest";
import { VJP_RULES } from "../../src/engine/autodiff/rules.ts";
import type { GraphBuilder } from "../../src/engine/ir/builder.ts";
import type { Value } from "../../src/engine/ir/graph.ts";
import type { SerializeOptions } from "../../src/engine/onnx/serialize.ts";
import { type CheckInput, coveredOps, gradCheck } from "./gradcheck.ts";

interface Case {
  name: string;
  dtype?: "float32" | "float64";
  inputs: CheckInput[];
  build: (b: GraphBuilder, xs: Value[]) => Value;
  symbols?: Record<string, number>;
  lowering?: SerializeOptions;
}

const inp = (name: string, shape: number[], extra: Partial<CheckInput> = {}): CheckInput => ({
  name,
  shape,
  ...extra,
});
const labelsInit = (classes: number) => (rng: { int(n: number): number }) => rng.int(classes);

const CASES: Case[] = [
  // elementwise binary, with broadcasting on either side
  {
    name: "add broadcast",
    inputs: [inp("a", [2, 3, 4]), inp("b", [3, 1])],
    build: (b, [x, y]) => b.add(x!, y!),
  },
  {
    name: "sub broadcast",
    inputs: [inp("a", [4]), inp("b", [2, 3, 4])],
    build: (b, [x, y]) => b.sub(x!, y!),
  },
  {
    name: "mul broadcast",
    inputs: [inp("a", [2, 1, 4]), inp("b", [3, 1])],
    build: (b, [x, y]) => b.mul(x!, y!),
  },
  {
    name: "div broadcast",
    inputs: [inp("a", [2, 3]), inp("b", [3], { init: "positive" })],
    build: (b, [x, y]) => b.div(x!, y!),
  },
  {
    name: "pow",
    inputs: [inp("a", [2, 3], { init: "positive" }), inp("b", [3], { init: "positive" })],
    build: (b, [x, y]) => b.pow(x!, y!),
  },
  { name: "max", inputs: [inp("a", [3, 4]), inp("b", [4])], build: (b, [x, y]) => b.max(x!, y!) },
  { name: "min", inputs: [inp("a", [3, 4]), inp("b", [3, 4])], build: (b, [x, y]) => b.min(x!, y!) },
  {
    name: "where broadcast",
    inputs: [inp("a", [3, 4]), inp("b", [4])],
    build: (b, [x, y]) => b.where(b.greater(x!, 0.1), x!, y!),
  },
  // unary
  { name: "neg", inputs: [inp("x", [5])], build: (b, [x]) => b.neg(x!) },
  { name: "sqrt", inputs: [inp("x", [5], { init: "positive" })], build: (b, [x]) => b.sqrt(x!) },
  { name: "exp", inputs: [inp("x", [5])], build: (b, [x]) => b.exp(x!) },
  { name: "log", inputs: [inp("x", [5], { init: "positive" })], build: (b, [x]) => b.log(x!) },
  { name: "tanh", inputs: [inp("x", [5])], build: (b, [x]) => b.tanh(x!) },
  { name: "relu", inputs: [inp("x", [6], { init: "awayFromZero" })], build: (b, [x]) => b.relu(x!) },
  { name: "sigmoid", inputs: [inp("x", [5])], build: (b, [x]) => b.sigmoid(x!) },
  { name: "abs", inputs: [inp("x", [6], { init: "awayFromZero" })], build: (b, [x]) => b.abs(x!) },
  { name: "identity", inputs: [inp("x", [3])], build: (b, [x]) => b.mul(b.identity(x!), x!) },
  { name: "erf (float32)", dtype: "float32", inputs: [inp("x", [8])], build: (b, [x]) => b.erf(x!) },
  {
    name: "gelu (float32, com.microsoft Gelu)",
    dtype: "float32",
    inputs: [inp("x", [3, 8])],
    build: (b, [x]) => b.gelu(x!),
  },
  {
    name: "cast float32 → float64 → float32",
    dtype: "float32",
    inputs: [inp("x", [4])],
    build: (b, [x]) => b.cast(b.exp(b.cast(x!, "float64")), "float32"),
  },
  // linear algebra
  {
    name: "matmul linear [B,N,D]×[D,O]",
    inputs: [inp("x", [2, 3, 4]), inp("w", [4, 5])],
    build: (b, [x, w]) => b.matmul(x!, w!),
  },
  {
    name: "matmul linear, weight transposed (torch layout)",
    inputs: [inp("x", [2, 3, 4]), inp("w", [5, 4])],
    build: (b, [x, w]) => b.matmul(x!, w!, { transB: true }),
  },
  {
    name: "matmul float32 FusedMatMul path",
    dtype: "float32",
    inputs: [inp("x", [2, 3, 4]), inp("w", [5, 4])],
    build: (b, [x, w]) => b.matmul(x!, w!, { transB: true }),
  },
  {
    name: "matmul batched transA",
    inputs: [inp("a", [2, 4, 3]), inp("b", [2, 4, 5])],
    build: (b, [x, y]) => b.matmul(x!, y!, { transA: true }),
  },
  {
    name: "matmul batched transA+transB (attention-like)",
    inputs: [inp("a", [2, 4, 3]), inp("b", [2, 5, 4])],
    build: (b, [x, y]) => b.matmul(x!, y!, { transA: true, transB: true }),
  },
  {
    name: "matmul broadcast batch [2,1,3,4]×[3,4,5]",
    inputs: [inp("a", [2, 1, 3, 4]), inp("b", [3, 4, 5])],
    build: (b, [x, y]) => b.matmul(x!, y!),
  },
  {
    name: "matmul 2-D × 3-D",
    inputs: [inp("a", [3, 4]), inp("b", [2, 4, 5])],
    build: (b, [x, y]) => b.matmul(x!, y!),
  },
  {
    name: "matmul 2-D both transposed",
    inputs: [inp("a", [4, 3]), inp("b", [5, 4])],
    build: (b, [x, y]) => b.matmul(x!, y!, { transA: true, transB: true }),
  },
  ...[
    [false, false],
    [false, true],
    [true, false],
    [true, true],
  ].map(
    ([ta, tb]): Case => ({
      name: `gemm transA=${ta} transB=${tb} alpha=0.5 + bias`,
      inputs: [inp("a", ta ? [4, 3] : [3, 4]), inp("b", tb ? [5, 4] : [4, 5]), inp("c", [5])],
      build: (b, [x, y, c]) => b.gemm(x!, y!, c, { transA: ta, transB: tb, alpha: 0.5 }),
    }),
  ),
  // normalisation
  { name: "softmax axis -1", inputs: [inp("x", [2, 3, 5])], build: (b, [x]) => b.softmax(x!, -1) },
  { name: "softmax axis 1", inputs: [inp("x", [2, 3, 5])], build: (b, [x]) => b.softmax(x!, 1) },
  { name: "logSoftmax", inputs: [inp("x", [3, 5])], build: (b, [x]) => b.logSoftmax(x!) },
  {
    name: "layerNorm (float64, primitive lowering)",
    inputs: [inp("x", [2, 3, 6]), inp("s", [6]), inp("b", [6])],
    build: (b, [x, s, c]) => b.layerNorm(x!, s!, c!),
  },
  {
    name: "layerNorm over two axes",
    inputs: [inp("x", [2, 3, 4]), inp("s", [3, 4]), inp("b", [3, 4])],
    build: (b, [x, s, c]) => b.layerNorm(x!, s!, c!, { axis: 1 }),
  },
  {
    name: "layerNorm (float32, LayerNormalization op)",
    dtype: "float32",
    inputs: [inp("x", [2, 3, 8]), inp("s", [8]), inp("b", [8])],
    build: (b, [x, s, c]) => b.layerNorm(x!, s!, c!, { epsilon: 1e-6 }),
  },
  // residual add + LayerNorm; both outputs (normalised and sum) reach the loss
  {
    name: "skipLayerNorm with bias (float64, Add + primitive LayerNorm lowering)",
    inputs: [inp("x", [2, 3, 6]), inp("skip", [2, 3, 6]), inp("s", [6]), inp("c", [6]), inp("bias", [6])],
    build: (b, [x, k, s, c, bias]) => {
      const { y, sum } = b.skipLayerNorm(x!, k!, { scale: s!, shift: c! }, { bias: bias!, epsilon: 1e-6 });
      return b.add(y, b.mul(sum, 0.5));
    },
  },
  ...(
    [
      ["Add + LayerNormalization", {}],
      ["com.microsoft SkipLayerNormalization", { fusedSkipLayerNorm: true }],
    ] as const
  ).map(
    ([label, lowering]): Case => ({
      name: `skipLayerNorm with bias (float32, ${label})`,
      dtype: "float32",
      lowering,
      inputs: [inp("x", [6, 8]), inp("skip", [6, 8]), inp("s", [8]), inp("c", [8]), inp("bias", [8])],
      build: (b, [x, k, s, c, bias]) => {
        const { y, sum } = b.skipLayerNorm(x!, k!, { scale: s!, shift: c! }, { bias: bias!, epsilon: 1e-6 });
        return b.add(y, b.mul(sum, 0.5));
      },
    }),
  ),
  {
    name: "skipLayerNorm without bias, only the normalised output used (float32)",
    dtype: "float32",
    inputs: [inp("x", [2, 3, 8]), inp("skip", [2, 3, 8]), inp("s", [8]), inp("c", [8])],
    build: (b, [x, k, s, c]) => b.skipLayerNorm(x!, k!, { scale: s!, shift: c! }).y,
  },
  // without the affine (a model folds it into the next linear layer): y = x̂, whose backward
  // reads x̂ from the op's own output
  {
    name: "layerNorm without affine (float64, primitive lowering)",
    inputs: [inp("x", [2, 3, 6])],
    build: (b, [x]) => b.layerNorm(x!, undefined, undefined),
  },
  {
    name: "layerNorm without affine over two axes",
    inputs: [inp("x", [2, 3, 4])],
    build: (b, [x]) => b.layerNorm(x!, undefined, undefined, { axis: 1 }),
  },
  {
    name: "layerNorm without affine (float32, LayerNormalization op)",
    dtype: "float32",
    inputs: [inp("x", [2, 3, 8])],
    build: (b, [x]) => b.layerNorm(x!, undefined, undefined, { epsilon: 1e-6 }),
  },
  {
    name: "skipLayerNorm without affine, with bias (float64)",
    inputs: [inp("x", [2, 3, 6]), inp("skip", [2, 3, 6]), inp("bias", [6])],
    build: (b, [x, k, bias]) => {
      const { y, sum } = b.skipLayerNorm(x!, k!, undefined, { bias: bias!, epsilon: 1e-6 });
      return b.add(y, b.mul(sum, 0.5));
    },
  },
  ...(
    [
      ["Add + LayerNormalization", {}],
      ["com.microsoft SkipLayerNormalization", { fusedSkipLayerNorm: true }],
    ] as const
  ).map(
    ([label, lowering]): Case => ({
      name: `skipLayerNorm without affine, with bias (float32, ${label})`,
      dtype: "float32",
      lowering,
      inputs: [inp("x", [6, 8]), inp("skip", [6, 8]), inp("bias", [8])],
      build: (b, [x, k, bias]) => {
        const { y, sum } = b.skipLayerNorm(x!, k!, undefined, { bias: bias!, epsilon: 1e-6 });
        return b.add(y, b.mul(sum, 0.5));
      },
    }),
  ),
  {
    name: "skipLayerNorm without affine or bias, only the normalised output used (float32)",
    dtype: "float32",
    inputs: [inp("x", [2, 3, 8]), inp("skip", [2, 3, 8])],
    build: (b, [x, k]) => b.skipLayerNorm(x!, k!, undefined).y,
  },
  // reductions
  {
    name: "reduceSum keepDims",
    inputs: [inp("x", [2, 3, 4])],
    build: (b, [x]) => b.reduceSum(x!, [0, 2], true),
  },
  { name: "reduceSum", inputs: [inp("x", [2, 3, 4])], build: (b, [x]) => b.reduceSum(x!, [1]) },
  { name: "reduceMean", inputs: [inp("x", [2, 3, 4])], build: (b, [x]) => b.reduceMean(x!, [-1, 0]) },
  { name: "reduceMax", inputs: [inp("x", [3, 5])], build: (b, [x]) => b.reduceMax(x!, [1]) },
  {
    name: "reduceSumSquare",
    inputs: [inp("x", [3, 5])],
    build: (b, [x]) => b.reduceSumSquare(x!, [0], true),
  },
  { name: "cumSum", inputs: [inp("x", [3, 5])], build: (b, [x]) => b.cumSum(x!, 1) },
  { name: "cumSum reverse", inputs: [inp("x", [3, 5])], build: (b, [x]) => b.cumSum(x!, 0, true) },
  // layout
  {
    name: "reshape",
    inputs: [inp("x", [2, 6])],
    build: (b, [x]) => b.mul(b.reshape(x!, [3, -1]), b.scalar(2, "float64")),
  },
  { name: "transpose", inputs: [inp("x", [2, 3, 4])], build: (b, [x]) => b.transpose(x!, [2, 0, 1]) },
  {
    name: "concat",
    inputs: [inp("a", [2, 1]), inp("b", [2, 3]), inp("c", [2, 2])],
    build: (b, [x, y, z]) => b.concat([x!, y!, z!], 1),
  },
  {
    name: "split (one output unused)",
    inputs: [inp("x", [2, 6])],
    build: (b, [x]) => {
      const [p, , r] = b.split(x!, 1, [2, 3, 1]);
      return b.concat([r!, p!], 1);
    },
  },
  { name: "slice", inputs: [inp("x", [4, 6])], build: (b, [x]) => b.sliceAxes(x!, [1, -4], [3, -1], [0, 1]) },
  { name: "pad", inputs: [inp("x", [2, 3])], build: (b, [x]) => b.pad(x!, [1, 0, 0, 2]) },
  {
    name: "gather with repeated 2-D indices",
    inputs: [inp("x", [3, 4]), inp("i", [2, 2], { dtype: "int64", data: BigInt64Array.of(0n, 3n, 3n, 1n) })],
    build: (b, [x, i]) => b.gather(x!, i!, 1),
  },
  {
    name: "gather scalar index (class token)",
    inputs: [inp("x", [2, 3, 4]), inp("i", [], { dtype: "int64", data: BigInt64Array.of(0n) })],
    build: (b, [x, i]) => b.gather(x!, i!, 1),
  },
  {
    name: "indexAdd",
    inputs: [
      inp("base", [3, 4]),
      inp("i", [3], { dtype: "int64", data: BigInt64Array.of(2n, 0n, 2n) }),
      inp("u", [3, 3]),
    ],
    build: (b, [x, i, u]) => b.indexAdd(x!, i!, u!, 1),
  },
  { name: "expand", inputs: [inp("x", [3, 1])], build: (b, [x]) => b.expand(x!, [2, 3, 4]) },
  // losses
  {
    name: "softmaxCrossEntropy",
    inputs: [inp("z", [4, 5]), inp("y", [4], { dtype: "int64", init: labelsInit(5) })],
    build: (b, [z, y]) => b.softmaxCrossEntropy(z!, y!),
  },
  {
    name: "softmaxCrossEntropy label smoothing 0.1",
    inputs: [inp("z", [4, 5]), inp("y", [4], { dtype: "int64", init: labelsInit(5) })],
    build: (b, [z, y]) => b.softmaxCrossEntropy(z!, y!, 0.1),
  },
  {
    name: "softCrossEntropy (logits and targets)",
    inputs: [inp("z", [3, 4]), inp("t", [3, 4], { init: "positive" })],
    build: (b, [z, t]) => b.softCrossEntropy(z!, t!),
  },
  {
    name: "bceWithLogits",
    inputs: [inp("z", [3, 4]), inp("t", [3, 4], { init: (r) => r.uniform() })],
    build: (b, [z, t]) => b.bceWithLogits(z!, t!),
  },
  // symbolic batch dim: dimSize, Expand and Reshape resolve "N" at run time
  {
    name: "symbolic batch: linear + layerNorm + mean + CE",
    symbols: { N: 3 },
    inputs: [
      inp("x", [3, 4], { graphShape: ["N", 4] }),
      inp("w", [5, 4]),
      inp("y", [3], { graphShape: ["N"], dtype: "int64", init: labelsInit(5) }),
    ],
    build: (b, [x, w, y]) => {
      const h = b.matmul(x!, w!, { transB: true }); // [N,5]
      const flat = b.reshape(h, [-1]); // [5*N]
      const wide = b.expand(b.reshape(flat, ["N", 5, 1]), ["N", 5, 2]);
      const logits = b.reduceMean(wide, [2]);
      return b.add(b.softmaxCrossEntropy(logits, y!), b.reduceSum(b.reduceMean(x!, [0]), [0]));
    },
  },
];

describe("VJP rules vs finite differences (real ORT sessions)", () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const r = await gradCheck({
        dtype: c.dtype ?? "float64",
        inputs: c.inputs,
        build: c.build,
        symbols: c.symbols,
        lowering: c.lowering,
      });
      expect(r.probed).toBeGreaterThan(0);
      if (process.env.GRADCHECK_VERBOSE) console.log(c.name, r.probed, r.worst);
      expect(r.worst!.err, JSON.stringify(r.worst)).toBeLessThanOrEqual(1);
    });
  }

  it("frozen weights: no gradient for them, but gradients flow through to the input", async () => {
    // x (trainable) → frozen linear + gelu → trainable head → loss
    const r = await gradCheck({
      dtype: "float32",
      inputs: [inp("x", [2, 3, 4]), inp("frozenW", [4, 4], { wrt: false }), inp("head", [4, 2])],
      build: (b, [x, fw, head]) => b.matmul(b.gelu(b.matmul(x!, fw!)), head!),
    });
    expect(r.worst!.err, JSON.stringify(r.worst)).toBeLessThanOrEqual(1);
  });

  afterAll(() => {
    const differentiable = Object.entries(VJP_RULES)
      .filter(([, rule]) => typeof rule === "function")
      .map(([op]) => op);
    const missing = differentiable.filter((op) => !coveredOps.has(op));
    expect(missing, `ops with a VJP rule but no finite-difference check: ${missing.join(", ")}`).toEqual([]);
  });
});
