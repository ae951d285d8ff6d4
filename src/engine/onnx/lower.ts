/**
 * How each IR op becomes ONNX nodes (opset 17). Decisions that depend on dtype live here:
 *
 * - `gelu`: float32 → com.microsoft Gelu (one fused kernel); float64 → x·½·(1+erf(x/√2)).
 * - `erf` on float64: ORT's CPU provider has no double Erf, so it is computed in float32 and
 *   cast back (≈1e-7 relative error). Gradient checks of erf/gelu therefore run in float32.
 * - `layerNorm`: float32 → LayerNormalization (which also returns the mean and 1/σ the backward
 *   reuses); float64 → explicit mean/variance ops, since ORT has no double stash type.
 * - `skipLayerNorm`: Add(s) then the `layerNorm` lowering; with `fusedSkipLayerNorm` (off by
 *   default: ORT's CPU kernel is ~3.5× slower than the pair) float32 → com.microsoft
 *   SkipLayerNormalization (bias add, residual add and LayerNorm in one kernel).
 * - `matmul` with transposed operands: 2-D → Gemm (transA/transB are free there); batched
 *   float32 → com.microsoft FusedMatMul; otherwise explicit Transpose + MatMul.
 * - `gemm` with a 1-D bias: Gemm without C, then Add (ORT fills C into the output on one thread).
 * - `reduceSum` over the leading axes of a static float tensor (bias gradients): ones · x as a
 *   MatMul, which streams about twice as fast as ReduceSum over axis 0.
 * - losses lower to LogSoftmax + Gather/Reduce ops; none needs a one-hot tensor in the forward.
 */

import { type DType, isFloatDType } from "../ir/dtype.ts";
import type { Node } from "../ir/graph.ts";
import { type OpName, skipLayerNormInputs } from "../ir/ops.ts";
import { isStaticDim, normAxis, type Shape } from "../ir/shape.ts";
import { type LowerContext, MS_DOMAIN } from "./lower-context.ts";
import { attr, ONNX_DTYPE, tensorProto } from "./proto.ts";

type Lowering<K extends OpName> = (ctx: LowerContext, node: Node<K>, ins: string[], outs: string[]) => void;

const same =
  (opType: string): Lowering<OpName> =>
  (ctx, _n, ins, outs) =>
    ctx.emit(opType, ins, outs);

function erfInto(ctx: LowerContext, x: string, dtype: DType, out?: string): string {
  if (dtype === "float32") return ctx.emit("Erf", [x], out ? [out] : 1)[0]!;
  const x32 = ctx.op("Cast", [x], [attr.int("to", ONNX_DTYPE.float32)]);
  const e32 = ctx.op("Erf", [x32]);
  return ctx.emit("Cast", [e32], out ? [out] : 1, [attr.int("to", ONNX_DTYPE[dtype])])[0]!;
}

/**
 * A float sum over the leading axes of a static-shaped tensor (bias and LayerNorm-parameter
 * gradients: [B·T, D] → [D]) as ones[1, L] · x[L, R] — MLAS streams that about twice as fast as
 * ReduceSum over axis 0. The ones row is a ConstantOfShape, which ORT folds at session start.
 */
function leadingSumAsMatMul(ctx: LowerContext, n: Node<"reduceSum">, x: string, y: string): boolean {
  const xv = n.inputs[0]!;
  if (!isFloatDType(xv.dtype) || !xv.shape.every(isStaticDim)) return false;
  const shape = xv.shape as number[];
  const axes = [...new Set(n.attrs.axes.map((a) => normAxis(a, shape.length)))].sort((a, b) => a - b);
  if (!axes.every((a, i) => a === i) || axes.length === shape.length) return false;
  const lead = shape.slice(0, axes.length).reduce((a, d) => a * d, 1);
  const rest = shape.slice(axes.length).reduce((a, d) => a * d, 1);
  if (lead < 2) return false;
  let cache = onesRows.get(ctx);
  if (!cache) {
    cache = new Map();
    onesRows.set(ctx, cache);
  }
  // ones [lead] · x [lead, rest] is [rest] (a 1-D first operand loses its axis); ones [1, lead]
  // keeps it, for a keepDims [1, rest] result.
  const out = n.outputs[0]!.shape as number[];
  const onesShape = out.length === 2 && out[0] === 1 ? [1, lead] : [lead];
  const key = `${xv.dtype}:${onesShape}`;
  let ones = cache.get(key);
  if (!ones) {
    const one = xv.dtype === "float64" ? Float64Array.of(1) : Float32Array.of(1);
    ones = ctx.op(
      "ConstantOfShape",
      [ctx.constInt64(onesShape)],
      [attr.tensor("value", tensorProto("value", xv.dtype, [1], one))],
    );
    cache.set(key, ones);
  }
  const flat = shape.length === 2 ? x : ctx.op("Reshape", [x, ctx.constInt64([lead, rest])]);
  if (onesShape.length === 2 || out.length === 1) ctx.emit("MatMul", [ones, flat], [y]);
  else ctx.emit("Reshape", [ctx.op("MatMul", [ones, flat]), ctx.constInt64(out)], [y]);
  return true;
}

/** The ones row of each length, made once per lowered graph. */
const onesRows = new WeakMap<LowerContext, Map<string, string>>();

/**
 * LayerNorm over axes [axis, rank): float32 → LayerNormalization (which also returns the mean
 * and 1/σ the backward reuses); float64 → explicit mean/variance ops (ORT has no double stash type).
 * Without scale and bias (the affine folded into the next linear layer) LayerNormalization gets
 * a ones scale, which ORT folds into a constant at session start.
 */
function layerNormInto(
  ctx: LowerContext,
  dtype: DType,
  shape: Shape,
  axisAttr: number,
  epsilon: number,
  [x, scale, bias]: (string | undefined)[],
  [y, mean, invStd]: string[],
): void {
  const rank = shape.length;
  const axis = normAxis(axisAttr, rank);
  if (dtype === "float32") {
    const ones = () =>
      ctx.op(
        "ConstantOfShape",
        [ctx.shapeTensor(shape.slice(axis))],
        [attr.tensor("value", tensorProto("value", dtype, [1], Float32Array.of(1)))],
      );
    ctx.emit(
      "LayerNormalization",
      [x!, scale ?? ones(), ...(bias ? [bias] : [])],
      [y!, mean!, invStd!],
      [attr.int("axis", axis), attr.float("epsilon", epsilon), attr.int("stash_type", 1)],
    );
    return;
  }
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  ctx.emit("ReduceMean", [x!], [mean!], reduceAttrs(axes, true));
  const centred = ctx.op("Sub", [x!, mean!]);
  const variance = ctx.op("ReduceMean", [ctx.op("Mul", [centred, centred])], reduceAttrs(axes, true));
  const std = ctx.op("Sqrt", [ctx.op("Add", [variance, ctx.constScalar(epsilon, dtype)])]);
  ctx.emit("Reciprocal", [std], [invStd!]);
  if (!scale || !bias) ctx.emit("Mul", [centred, invStd!], [y!]);
  else ctx.emit("Add", [ctx.op("Mul", [ctx.op("Mul", [centred, invStd!]), scale]), bias], [y!]);
}

function reduceAttrs(axes: number[], keepDims: boolean) {
  return [attr.ints("axes", axes), attr.int("keepdims", keepDims ? 1 : 0)];
}

export const LOWERINGS: { [K in OpName]: Lowering<K> } = {
  add: same("Add"),
  sub: same("Sub"),
  mul: same("Mul"),
  div: same("Div"),
  pow: same("Pow"),
  max: same("Max"),
  min: same("Min"),
  equal: same("Equal"),
  less: same("Less"),
  greater: same("Greater"),
  neg: same("Neg"),
  sqrt: same("Sqrt"),
  exp: same("Exp"),
  log: same("Log"),
  tanh: same("Tanh"),
  relu: same("Relu"),
  sigmoid: same("Sigmoid"),
  abs: same("Abs"),
  sign: same("Sign"),
  identity: same("Identity"),
  stopGradient: same("Identity"),
  where: same("Where"),
  erf: (ctx, n, [x], [y]) => void erfInto(ctx, x!, n.inputs[0]!.dtype, y),
  gelu: (ctx, n, [x], [y]) => {
    const dtype = n.inputs[0]!.dtype;
    if (dtype === "float32" && ctx.contribOps) {
      ctx.emit("Gelu", [x!], [y!], [], MS_DOMAIN);
      return;
    }
    const e = erfInto(ctx, ctx.op("Mul", [x!, ctx.constScalar(Math.SQRT1_2, dtype)]), dtype);
    const cdf = ctx.op("Mul", [ctx.op("Add", [e, ctx.constScalar(1, dtype)]), ctx.constScalar(0.5, dtype)]);
    ctx.emit("Mul", [x!, cdf], [y!]);
  },
  // With u = x/√2:  g·GELU'(x) = g·½·(1 + erf(u) + √(2/π)·x/e^{u²})  (x/e^{u²} → 0 correctly
  // when e^{u²} overflows). Ten elementwise passes; with compactGeluGrad (float32) nine: the
  // "+1" and "·½" are one Mean(t, 1) = (t+1)/2, the same bits as (t+1)·½ (scaling by ½ is exact);
  // with the ½ already in g (halvedGradient) eight, and no Mean, whose ORT kernel is slow.
  // All three give the same bits (test/engine/gelu-grad.test.ts).
  geluGrad: (ctx, n, [x, g], [y]) => {
    const dtype = n.inputs[0]!.dtype;
    const u = ctx.op("Mul", [x!, ctx.constScalar(Math.SQRT1_2, dtype)]);
    const xPdf = ctx.op("Mul", [
      ctx.op("Div", [x!, ctx.op("Exp", [ctx.op("Mul", [u, u])])]),
      ctx.constScalar(Math.sqrt(2 / Math.PI), dtype),
    ]);
    const t = ctx.op("Add", [erfInto(ctx, u, dtype), xPdf]);
    // g already halved by the GEMM that made it (OpAttrs.geluGrad): g·(t + 1), eight passes.
    if (n.attrs.halvedGradient) {
      ctx.emit("Mul", [g!, ctx.op("Add", [t, ctx.constScalar(1, dtype)])], [y!]);
      return;
    }
    if (ctx.compactGeluGrad && dtype === "float32") {
      ctx.emit("Mul", [g!, ctx.op("Mean", [t, ctx.constScalar(1, dtype)])], [y!]);
      return;
    }
    const one = ctx.constScalar(1, dtype);
    ctx.emit("Mul", [ctx.op("Mul", [g!, ctx.op("Add", [t, one])]), ctx.constScalar(0.5, dtype)], [y!]);
  },
  cast: (ctx, n, ins, outs) => ctx.emit("Cast", ins, outs, [attr.int("to", ONNX_DTYPE[n.attrs.to])]),
  matmul: (ctx, n, [a, b], [y]) => {
    const { transA, transB } = n.attrs;
    const [ra, rb] = [n.inputs[0]!.rank, n.inputs[1]!.rank];
    if (!transA && !transB) ctx.emit("MatMul", [a!, b!], [y!]);
    else if (ra === 2 && rb === 2)
      ctx.emit("Gemm", [a!, b!], [y!], [attr.int("transA", +transA), attr.int("transB", +transB)]);
    else if (n.inputs[0]!.dtype === "float32" && ctx.contribOps)
      ctx.emit(
        "FusedMatMul",
        [a!, b!],
        [y!],
        [attr.int("transA", +transA), attr.int("transB", +transB)],
        MS_DOMAIN,
      );
    else {
      const swapLast = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
      const aa = transA ? ctx.op("Transpose", [a!], [attr.ints("perm", swapLast(ra))]) : a!;
      const bb = transB ? ctx.op("Transpose", [b!], [attr.ints("perm", swapLast(rb))]) : b!;
      ctx.emit("MatMul", [aa, bb], [y!]);
    }
  },
  gemm: (ctx, n, ins, outs) => {
    const attrs = [
      attr.int("transA", +n.attrs.transA),
      attr.int("transB", +n.attrs.transB),
      attr.float("alpha", n.attrs.alpha),
    ];
    // A per-column bias as Gemm's C is broadcast into the output by a single-threaded Eigen
    // copy before the product; a separate Add runs on the intra-op pool.
    if (ins.length === 3 && n.inputs[2]!.rank === 1) {
      const y = ctx.op("Gemm", ins.slice(0, 2), attrs);
      ctx.emit("Add", [y, ins[2]!], outs);
      return;
    }
    ctx.emit("Gemm", ins, outs, attrs);
  },
  softmax: (ctx, n, ins, outs) => ctx.emit("Softmax", ins, outs, [attr.int("axis", n.attrs.axis)]),
  logSoftmax: (ctx, n, ins, outs) => ctx.emit("LogSoftmax", ins, outs, [attr.int("axis", n.attrs.axis)]),
  layerNorm: (ctx, n, ins, outs) =>
    layerNormInto(ctx, n.inputs[0]!.dtype, n.inputs[0]!.shape, n.attrs.axis, n.attrs.epsilon, ins, outs),
  skipLayerNorm: (ctx, n, ins, [y, mean, invStd, sum]) => {
    const xv = n.inputs[0]!;
    const { x, skip, scale, shift, bias } = skipLayerNormInputs(ins);
    // ORT's CPU kernel takes [rows, D] or [B, T, D] and returns mean, 1/σ and the sum too; its
    // gamma is required (ones when the affine is folded away), beta and bias optional ("" skips).
    if (xv.dtype === "float32" && ctx.fusedSkipLayerNorm && xv.rank <= 3) {
      const gamma =
        scale ??
        ctx.op(
          "ConstantOfShape",
          [ctx.shapeTensor([xv.shape.at(-1)!])],
          [attr.tensor("value", tensorProto("value", "float32", [1], Float32Array.of(1)))],
        );
      const tail = bias ? [shift ?? "", bias] : shift ? [shift] : [];
      ctx.emit(
        "SkipLayerNormalization",
        [x, skip, gamma, ...tail],
        [y!, mean!, invStd!, sum!],
        [attr.float("epsilon", n.attrs.epsilon)],
        MS_DOMAIN,
      );
      return;
    }
    if (bias) ctx.emit("Add", [ctx.op("Add", [x, bias]), skip], [sum!]);
    else ctx.emit("Add", [x, skip], [sum!]);
    layerNormInto(ctx, xv.dtype, xv.shape, -1, n.attrs.epsilon, [sum!, scale, shift], [y!, mean!, invStd!]);
  },
  reduceSum: (ctx, n, [x], [y]) => {
    if (n.attrs.axes.length === 0) ctx.emit("Identity", [x!], [y!]);
    else if (leadingSumAsMatMul(ctx, n, x!, y!)) return;
    else
      ctx.emit(
        "ReduceSum",
        [x!, ctx.constInt64(n.attrs.axes)],
        [y!],
        [attr.int("keepdims", +n.attrs.keepDims)],
      );
  },
  reduceMean: (ctx, n, [x], [y]) =>
    n.attrs.axes.length === 0
      ? ctx.emit("Identity", [x!], [y!])
      : ctx.emit("ReduceMean", [x!], [y!], reduceAttrs(n.attrs.axes, n.attrs.keepDims)),
  reduceMax: (ctx, n, [x], [y]) =>
    n.attrs.axes.length === 0
      ? ctx.emit("Identity", [x!], [y!])
      : ctx.emit("ReduceMax", [x!], [y!], reduceAttrs(n.attrs.axes, n.attrs.keepDims)),
  reduceSumSquare: (ctx, n, [x], [y]) =>
    n.attrs.axes.length === 0
      ? ctx.emit("Mul", [x!, x!], [y!])
      : ctx.emit("ReduceSumSquare", [x!], [y!], reduceAttrs(n.attrs.axes, n.attrs.keepDims)),
  argMax: (ctx, n, ins, outs) =>
    ctx.emit("ArgMax", ins, outs, [attr.int("axis", n.attrs.axis), attr.int("keepdims", +n.attrs.keepDims)]),
  cumSum: (ctx, n, [x], outs) =>
    ctx.emit("CumSum", [x!, ctx.constInt64([n.attrs.axis], true)], outs, [
      attr.int("reverse", +n.attrs.reverse),
    ]),
  reshape: (ctx, n, [x], outs) => ctx.emit("Reshape", [x!, ctx.reshapeTarget(n.attrs.shape)], outs),
  transpose: (ctx, n, ins, outs) => ctx.emit("Transpose", ins, outs, [attr.ints("perm", n.attrs.perm)]),
  concat: (ctx, n, ins, outs) => ctx.emit("Concat", ins, outs, [attr.int("axis", n.attrs.axis)]),
  split: (ctx, n, [x], outs) =>
    ctx.emit("Split", [x!, ctx.constInt64(n.attrs.sizes)], outs, [attr.int("axis", n.attrs.axis)]),
  slice: (ctx, n, [x], outs) =>
    ctx.emit(
      "Slice",
      [x!, ctx.constInt64(n.attrs.starts), ctx.constInt64(n.attrs.ends), ctx.constInt64(n.attrs.axes)],
      outs,
    ),
  pad: (ctx, n, [x], outs) => ctx.emit("Pad", [x!, ctx.constInt64(n.attrs.pads)], outs),
  gather: (ctx, n, ins, outs) => ctx.emit("Gather", ins, outs, [attr.int("axis", n.attrs.axis)]),
  indexAdd: (ctx, n, [base, idx, upd], [y]) => {
    const rank = n.inputs[0]!.rank;
    const axis = normAxis(n.attrs.axis, rank);
    if (rank === 1) {
      ctx.emit(
        "ScatterElements",
        [base!, idx!, upd!],
        [y!],
        [attr.int("axis", 0), attr.string("reduction", "add")],
      );
      return;
    }
    // ScatterND adds whole slices along the leading axis: move `axis` to the front and back.
    const perm = [axis, ...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== axis)];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    const front = (t: string) => (axis === 0 ? t : ctx.op("Transpose", [t], [attr.ints("perm", perm)]));
    const idx2 = ctx.op("Unsqueeze", [idx!, ctx.constInt64([1])]);
    const scattered = ctx.emit("ScatterND", [front(base!), idx2, front(upd!)], axis === 0 ? [y!] : 1, [
      attr.string("reduction", "add"),
    ])[0]!;
    if (axis !== 0) ctx.emit("Transpose", [scattered], [y!], [attr.ints("perm", inverse)]);
  },
  expand: (ctx, n, [x], outs) => ctx.emit("Expand", [x!, ctx.shapeTensor(n.attrs.shape)], outs),
  full: (ctx, n, _ins, outs) => {
    const { dtype, value } = n.attrs;
    const one =
      dtype === "int64"
        ? BigInt64Array.of(BigInt(value))
        : dtype === "float64"
          ? Float64Array.of(value)
          : dtype === "bool"
            ? Uint8Array.of(value ? 1 : 0)
            : Float32Array.of(value);
    ctx.emit("ConstantOfShape", [ctx.shapeTensor(n.attrs.shape)], outs, [
      attr.tensor("value", tensorProto("value", dtype, [1], one)),
    ]);
  },
  dimSize: (ctx, n, [x], [y]) => {
    const shape = ctx.op("Shape", [x!]);
    const dims = ctx.op("Gather", [shape, ctx.constInt64(n.attrs.axes)], [attr.int("axis", 0)]);
    const prod = ctx.op("ReduceProd", [dims], [attr.int("keepdims", 0)]);
    ctx.emit("Cast", [prod], [y!], [attr.int("to", ONNX_DTYPE[n.attrs.dtype])]);
  },
  softmaxCrossEntropy: (ctx, n, [logits, labels], [loss, logProb]) => {
    // timm's LabelSmoothingCrossEntropy: (1-ε)·nll + ε·mean_c(-log p_c), averaged over the batch.
    const dtype = n.inputs[0]!.dtype;
    const eps = n.attrs.smoothing;
    ctx.emit("LogSoftmax", [logits!], [logProb!], [attr.int("axis", 1)]);
    const picked = ctx.op(
      "GatherElements",
      [logProb!, ctx.op("Unsqueeze", [labels!, ctx.constInt64([1])])],
      [attr.int("axis", 1)],
    );
    let perSample = picked; // log p_label, [B,1]
    if (eps > 0) {
      const meanLogP = ctx.op("ReduceMean", [logProb!], reduceAttrs([1], true));
      perSample = ctx.op("Add", [
        ctx.op("Mul", [picked, ctx.constScalar(1 - eps, dtype)]),
        ctx.op("Mul", [meanLogP, ctx.constScalar(eps, dtype)]),
      ]);
    }
    ctx.emit("Neg", [ctx.op("ReduceMean", [perSample], reduceAttrs([0, 1], false))], [loss!]);
  },
  softCrossEntropy: (ctx, _n, [logits, targets], [loss, logProb]) => {
    ctx.emit("LogSoftmax", [logits!], [logProb!], [attr.int("axis", 1)]);
    const perSample = ctx.op(
      "ReduceSum",
      [ctx.op("Mul", [targets!, logProb!]), ctx.constInt64([1])],
      [attr.int("keepdims", 1)],
    );
    ctx.emit("Neg", [ctx.op("ReduceMean", [perSample], reduceAttrs([0, 1], false))], [loss!]);
  },
  bceWithLogits: (ctx, n, [x, t], [loss]) => {
    // max(x,0) − x·t + log(1 + e^{−|x|}), stable for any x
    const rank = n.inputs[0]!.rank;
    const terms = ctx.op("Add", [
      ctx.op("Sub", [ctx.op("Relu", [x!]), ctx.op("Mul", [x!, t!])]),
      // log(1 + e^{−|x|}); ORT's CPU Softplus is float-only
      ctx.op("Log", [
        ctx.op("Add", [
          ctx.op("Exp", [ctx.op("Neg", [ctx.op("Abs", [x!])])]),
          ctx.constScalar(1, n.inputs[0]!.dtype),
        ]),
      ]),
    ]);
    if (rank === 0) ctx.emit("Identity", [terms], [loss!]);
    else
      ctx.emit(
        "ReduceMean",
        [terms],
        [loss!],
        reduceAttrs(
          Array.from({ length: rank }, (_, i) => i),
          false,
        ),
      );
  },
  loop: (ctx, n, ins, outs) => {
    const body = ctx.subgraph(n.attrs.body);
    const trip = ctx.constInt64([n.attrs.steps], true);
    const cond = ctx.constScalar(1, "bool");
    ctx.emit("Loop", [trip, cond, ...ins], outs, [attr.graph("body", body)]);
  },
};
