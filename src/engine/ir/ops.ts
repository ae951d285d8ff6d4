/**
 * THE op set of the engine, in one place: each op's attributes, arity and shape/dtype inference.
 *
 * Primitive ops map one-to-one onto ONNX operators. Composite ops (`gelu`, `layerNorm`,
 * `softmaxCrossEntropy`, `softCrossEntropy`, `bceWithLogits`, `dimSize`, `indexAdd`) carry
 * their meaning as a whole so that (a) autodiff can use a fused closed-form backward and (b) the
 * ONNX serialiser can pick the best lowering per dtype (src/engine/onnx/lower.ts).
 *
 * Adding an op: add its attrs to `OpAttrs`, its definition to `OPS`, a VJP rule (or
 * "nondifferentiable") to src/engine/autodiff/rules.ts, a lowering to src/engine/onnx/lower.ts,
 * and a builder method. The type checker refuses a table that misses one of them.
 */
import { type DType, isFloatDType } from "./dtype.ts";
import {
  broadcastShapes,
  type Dim,
  dimsEqual,
  formatShape,
  isStaticDim,
  normAxis,
  numel,
  type Shape,
} from "./shape.ts";

export interface TensorType {
  dtype: DType;
  shape: Shape;
}

type NoAttrs = Record<string, never>;
interface ReduceAttrs {
  axes: number[];
  keepDims: boolean;
}

/**
 * What shape inference needs of a loop body. A body is a `Graph` (graph.ts), which has this
 * shape; nodes carry `OpAttrs<Graph>`. Structural on purpose: graph.ts imports this file for the
 * attribute table, so this file does not import graph.ts.
 */
export interface LoopBody {
  readonly inputs: readonly TensorType[];
  readonly outputs: readonly { readonly value: TensorType }[];
}

export interface OpAttrs<Body extends LoopBody = LoopBody> {
  // elementwise binary, numpy broadcasting, same dtype (pow: float only)
  add: NoAttrs;
  sub: NoAttrs;
  mul: NoAttrs;
  div: NoAttrs;
  pow: NoAttrs;
  max: NoAttrs;
  min: NoAttrs;
  // comparisons → bool
  equal: NoAttrs;
  less: NoAttrs;
  greater: NoAttrs;
  // elementwise unary
  neg: NoAttrs;
  sqrt: NoAttrs;
  exp: NoAttrs;
  log: NoAttrs;
  erf: NoAttrs;
  tanh: NoAttrs;
  relu: NoAttrs;
  sigmoid: NoAttrs;
  abs: NoAttrs;
  sign: NoAttrs;
  /** exact GELU, x·Φ(x) = x/2·(1 + erf(x/√2)) */
  gelu: NoAttrs;
  /**
   * GELU's derivative times the incoming gradient: geluGrad(x, g) = g·GELU'(x) (gelu's VJP). With
   * `halvedGradient`, g arrives already multiplied by ½ — the ½ of GELU'(x) = ½·(1 + erf(x/√2) +
   * x·√(2/π)·e^{−x²/2}), folded into the GEMM that made g — and the op applies the rest.
   */
  geluGrad: { halvedGradient: boolean };
  identity: NoAttrs;
  /** identity in the forward pass; blocks gradients */
  stopGradient: NoAttrs;
  where: NoAttrs;
  cast: { to: DType };
  // linear algebra: trans* swaps the last two axes of that operand
  matmul: { transA: boolean; transB: boolean };
  /** alpha·op(A)·op(B) (+ C, broadcast), 2-D only */
  gemm: { transA: boolean; transB: boolean; alpha: number };
  // normalisation
  softmax: { axis: number };
  logSoftmax: { axis: number };
  /**
   * normalises over axes [axis, rank); outputs y, mean, invStd (the latter two keep dims).
   * Inputs [x, scale, shift], or [x] alone for the normalised rows without the affine (y = x̂; a
   * model folds scale and shift into the linear layer that reads them, see models/vit.ts).
   */
  layerNorm: { axis: number; epsilon: number };
  /**
   * A residual add and the LayerNorm after it, as one op: sum = x + skip (+ bias), then
   * LayerNorm over the last axis. Outputs y, mean, invStd (as layerNorm) and sum (the residual
   * stream, which the block also needs). Lowered as Add(s) + LayerNormalization, or with
   * SerializeOptions.fusedSkipLayerNorm as com.microsoft SkipLayerNormalization (slower on CPU).
   * Inputs [x, skip, scale, shift, bias?], or without the affine [x, skip, bias?]
   * (see `skipLayerNormInputs`).
   */
  skipLayerNorm: { epsilon: number };
  // reductions
  reduceSum: ReduceAttrs;
  reduceMean: ReduceAttrs;
  reduceMax: ReduceAttrs;
  reduceSumSquare: ReduceAttrs;
  argMax: { axis: number; keepDims: boolean };
  cumSum: { axis: number; reverse: boolean };
  // layout
  reshape: { shape: Shape };
  transpose: { perm: number[] };
  concat: { axis: number };
  split: { axis: number; sizes: number[] };
  /** steps of 1; `ends` may exceed the dim (clamped); per-axis */
  slice: { starts: number[]; ends: number[]; axes: number[] };
  /** zero padding: pads = [begin_0..begin_{r-1}, end_0..end_{r-1}] */
  pad: { pads: number[] };
  gather: { axis: number };
  /** out = base; out[.., idx[j], ..] += updates[.., j, ..] along axis (indices 1-D) */
  indexAdd: { axis: number };
  expand: { shape: Shape };
  /** a tensor filled with one value (lowered to ConstantOfShape, so no big constant in the model) */
  full: { shape: Shape; dtype: DType; value: number };
  /** product of x's dims over `axes` as a scalar of `dtype` — symbolic dims resolved at run time */
  dimSize: { axes: number[]; dtype: DType };
  // losses (mean over the batch)
  /** (logits[B,C], labels int64[B]) → (loss[], logProb[B,C]); targets smoothed by ε */
  softmaxCrossEntropy: { smoothing: number };
  /** (logits[B,C], targets[B,C] summing to 1) → (loss[], logProb[B,C]) */
  softCrossEntropy: NoAttrs;
  /** (logits, targets same shape) → loss[]: mean of binary cross-entropy with logits */
  bceWithLogits: NoAttrs;
  // control flow
  /** runs `body` `steps` times; inputs are the initial loop-carried values */
  loop: { steps: number; body: Body };
}

export type OpName = keyof OpAttrs;

export interface OpDef<K extends OpName> {
  /** allowed input counts [min, max] */
  arity: [number, number];
  infer(inputs: TensorType[], attrs: OpAttrs[K]): TensorType[];
}

// ---- helpers -----------------------------------------------------------------------------------

/**
 * The inputs of a skipLayerNorm node by role: [x, skip, scale, shift, bias?] with the affine,
 * [x, skip, bias?] without it (2–3 inputs). One place for the layout that shape inference,
 * autodiff and lowering all read.
 */
export function skipLayerNormInputs<T>(ins: readonly T[]): { x: T; skip: T; scale?: T; shift?: T; bias?: T } {
  const [x, skip] = ins as [T, T];
  if (ins.length <= 3) return { x, skip, ...(ins[2] !== undefined ? { bias: ins[2] } : {}) };
  return { x, skip, scale: ins[2], shift: ins[3], ...(ins[4] !== undefined ? { bias: ins[4] } : {}) };
}

function fail(msg: string): never {
  throw new Error(msg);
}

function requireFloat(t: TensorType, what = "input"): void {
  if (!isFloatDType(t.dtype)) fail(`${what} must be float32 or float64, got ${t.dtype}`);
}

function sameDType(ins: TensorType[]): DType {
  const d = ins[0]!.dtype;
  for (const t of ins) if (t.dtype !== d) fail(`dtypes differ: ${ins.map((x) => x.dtype).join(" vs ")}`);
  return d;
}

function binaryFloat(ins: TensorType[]): TensorType[] {
  const dtype = sameDType(ins);
  requireFloat(ins[0]!);
  return [{ dtype, shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape) }];
}

/** add/sub/mul/div/max/min also work on int64 (step counters, index arithmetic) */
function binaryNumeric(ins: TensorType[]): TensorType[] {
  const dtype = sameDType(ins);
  if (dtype === "bool") fail("arithmetic on bool");
  return [{ dtype, shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape) }];
}

function compare(ins: TensorType[]): TensorType[] {
  sameDType(ins);
  return [{ dtype: "bool", shape: broadcastShapes(ins[0]!.shape, ins[1]!.shape) }];
}

function unaryFloat(ins: TensorType[]): TensorType[] {
  requireFloat(ins[0]!);
  return [{ ...ins[0]! }];
}

function reduce(ins: TensorType[], a: ReduceAttrs): TensorType[] {
  const x = ins[0]!;
  requireFloat(x);
  const axes = new Set(a.axes.map((ax) => normAxis(ax, x.shape.length)));
  if (axes.size !== a.axes.length) fail(`repeated reduce axis in ${JSON.stringify(a.axes)}`);
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!axes.has(i)) shape.push(d);
    else if (a.keepDims) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

function matmulShape(a: Shape, b: Shape, transA: boolean, transB: boolean): Shape {
  if (a.length < 2 || b.length < 2)
    fail(`operands need rank ≥ 2, got ${formatShape(a)} and ${formatShape(b)}`);
  const [m, ka] = transA ? [a.at(-1)!, a.at(-2)!] : [a.at(-2)!, a.at(-1)!];
  const [kb, n] = transB ? [b.at(-1)!, b.at(-2)!] : [b.at(-2)!, b.at(-1)!];
  if (!dimsEqual(ka, kb))
    fail(
      `inner dims differ: ${formatShape(a)}${transA ? "ᵀ" : ""} × ${formatShape(b)}${transB ? "ᵀ" : ""} (${ka} vs ${kb})`,
    );
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  return [...batch, m, n];
}

function isPermutation(perm: number[], rank: number): boolean {
  return perm.length === rank && [...perm].sort((x, y) => x - y).every((p, i) => p === i);
}

function sliceDim(d: Dim, start: number, end: number): Dim {
  if (!isStaticDim(d)) {
    if (start === 0 && end >= Number.MAX_SAFE_INTEGER) return d;
    fail(`cannot slice symbolic dim ${d} with static bounds [${start}, ${end})`);
  }
  const s = Math.min(Math.max(start < 0 ? start + d : start, 0), d);
  const e = Math.min(Math.max(end < 0 ? end + d : end, 0), d);
  return Math.max(e - s, 0);
}

// ---- the table ---------------------------------------------------------------------------------

export const OPS: { [K in OpName]: OpDef<K> } = {
  add: { arity: [2, 2], infer: binaryNumeric },
  sub: { arity: [2, 2], infer: binaryNumeric },
  mul: { arity: [2, 2], infer: binaryNumeric },
  div: { arity: [2, 2], infer: binaryNumeric },
  pow: { arity: [2, 2], infer: binaryFloat },
  max: { arity: [2, 2], infer: binaryNumeric },
  min: { arity: [2, 2], infer: binaryNumeric },
  equal: { arity: [2, 2], infer: compare },
  less: { arity: [2, 2], infer: compare },
  greater: { arity: [2, 2], infer: compare },
  neg: { arity: [1, 1], infer: unaryFloat },
  sqrt: { arity: [1, 1], infer: unaryFloat },
  exp: { arity: [1, 1], infer: unaryFloat },
  log: { arity: [1, 1], infer: unaryFloat },
  erf: { arity: [1, 1], infer: unaryFloat },
  tanh: { arity: [1, 1], infer: unaryFloat },
  relu: { arity: [1, 1], infer: unaryFloat },
  sigmoid: { arity: [1, 1], infer: unaryFloat },
  abs: { arity: [1, 1], infer: unaryFloat },
  sign: { arity: [1, 1], infer: unaryFloat },
  gelu: { arity: [1, 1], infer: unaryFloat },
  geluGrad: { arity: [2, 2], infer: binaryFloat },
  identity: { arity: [1, 1], infer: (ins) => [{ ...ins[0]! }] },
  stopGradient: { arity: [1, 1], infer: (ins) => [{ ...ins[0]! }] },
  where: {
    arity: [3, 3],
    infer: ([c, a, b]) => {
      if (c!.dtype !== "bool") fail(`condition must be bool, got ${c!.dtype}`);
      const dtype = sameDType([a!, b!]);
      return [{ dtype, shape: broadcastShapes(c!.shape, broadcastShapes(a!.shape, b!.shape)) }];
    },
  },
  cast: { arity: [1, 1], infer: ([x], a) => [{ dtype: a.to, shape: x!.shape }] },
  matmul: {
    arity: [2, 2],
    infer: (ins, a) => {
      const dtype = sameDType(ins);
      requireFloat(ins[0]!);
      return [{ dtype, shape: matmulShape(ins[0]!.shape, ins[1]!.shape, a.transA, a.transB) }];
    },
  },
  gemm: {
    arity: [2, 3],
    infer: (ins, a) => {
      const dtype = sameDType(ins);
      requireFloat(ins[0]!);
      if (ins[0]!.shape.length !== 2 || ins[1]!.shape.length !== 2) fail("gemm operands must be 2-D");
      const shape = matmulShape(ins[0]!.shape, ins[1]!.shape, a.transA, a.transB);
      if (ins[2]) {
        const bc = broadcastShapes(shape, ins[2].shape);
        if (!bc.every((d, i) => dimsEqual(d, shape[i]!)))
          fail(`bias ${formatShape(ins[2].shape)} does not broadcast to ${formatShape(shape)}`);
      }
      return [{ dtype, shape }];
    },
  },
  softmax: {
    arity: [1, 1],
    infer: ([x], a) => {
      requireFloat(x!);
      normAxis(a.axis, x!.shape.length);
      return [{ ...x! }];
    },
  },
  logSoftmax: {
    arity: [1, 1],
    infer: ([x], a) => {
      requireFloat(x!);
      normAxis(a.axis, x!.shape.length);
      return [{ ...x! }];
    },
  },
  layerNorm: {
    arity: [1, 3],
    infer: (ins, a) => {
      if (ins.length === 2) fail("expected [x] or [x, scale, shift], got 2 inputs");
      const [x, ...affine] = ins;
      requireFloat(x!);
      sameDType([x!, ...affine]);
      const axis = normAxis(a.axis, x!.shape.length);
      const normShape = x!.shape.slice(axis);
      for (const p of affine)
        if (p.shape.length !== normShape.length || !p.shape.every((d, i) => dimsEqual(d, normShape[i]!)))
          fail(
            `scale/bias shape ${formatShape(p.shape)} must equal normalised shape ${formatShape(normShape)}`,
          );
      const statShape = x!.shape.map((d, i) => (i < axis ? d : 1));
      return [{ ...x! }, { dtype: x!.dtype, shape: statShape }, { dtype: x!.dtype, shape: statShape }];
    },
  },
  skipLayerNorm: {
    arity: [2, 5],
    infer: (ins) => {
      const { x, skip, scale, shift, bias } = skipLayerNormInputs(ins);
      const params = [scale, shift, bias].filter((p): p is TensorType => p !== undefined);
      requireFloat(x);
      sameDType([x, skip, ...params]);
      if (x.shape.length < 2) fail(`input must have rank ≥ 2, got ${formatShape(x.shape)}`);
      if (skip.shape.length !== x.shape.length || !skip.shape.every((d, i) => dimsEqual(d, x.shape[i]!)))
        fail(`skip ${formatShape(skip.shape)} must have the input's shape ${formatShape(x.shape)}`);
      const d = x.shape.at(-1)!;
      for (const p of params)
        if (p.shape.length !== 1 || !dimsEqual(p.shape[0]!, d))
          fail(`scale/shift/bias shape ${formatShape(p.shape)} must be [${d}] (the last axis)`);
      const statShape = [...x.shape.slice(0, -1), 1];
      return [{ ...x }, { dtype: x.dtype, shape: statShape }, { dtype: x.dtype, shape: statShape }, { ...x }];
    },
  },
  reduceSum: { arity: [1, 1], infer: reduce },
  reduceMean: { arity: [1, 1], infer: reduce },
  reduceMax: { arity: [1, 1], infer: reduce },
  reduceSumSquare: { arity: [1, 1], infer: reduce },
  argMax: {
    arity: [1, 1],
    infer: ([x], a) => {
      const axis = normAxis(a.axis, x!.shape.length);
      const shape = x!.shape.flatMap((d, i) => (i !== axis ? [d] : a.keepDims ? [1] : []));
      return [{ dtype: "int64", shape }];
    },
  },
  cumSum: {
    arity: [1, 1],
    infer: ([x], a) => {
      normAxis(a.axis, x!.shape.length);
      if (x!.dtype === "bool") fail("cumSum of bool");
      return [{ ...x! }];
    },
  },
  reshape: {
    arity: [1, 1],
    infer: ([x], a) => {
      if (!dimsEqual(numel(x!.shape), numel(a.shape)))
        fail(`cannot reshape ${formatShape(x!.shape)} to ${formatShape(a.shape)}: element counts differ`);
      return [{ dtype: x!.dtype, shape: a.shape }];
    },
  },
  transpose: {
    arity: [1, 1],
    infer: ([x], a) => {
      if (!isPermutation(a.perm, x!.shape.length))
        fail(`perm ${JSON.stringify(a.perm)} is not a permutation of rank ${x!.shape.length}`);
      return [{ dtype: x!.dtype, shape: a.perm.map((p) => x!.shape[p]!) }];
    },
  },
  concat: {
    arity: [1, Number.POSITIVE_INFINITY],
    infer: (ins, a) => {
      const dtype = sameDType(ins);
      const rank = ins[0]!.shape.length;
      const axis = normAxis(a.axis, rank);
      let total: Dim = 0;
      for (const t of ins) {
        if (t.shape.length !== rank) fail(`ranks differ: ${ins.map((x) => formatShape(x.shape)).join(", ")}`);
        t.shape.forEach((d, i) => {
          if (i !== axis && !dimsEqual(d, ins[0]!.shape[i]!))
            fail(`non-concat dims differ: ${ins.map((x) => formatShape(x.shape)).join(", ")}`);
        });
        const d = t.shape[axis]!;
        if (!isStaticDim(d) || !isStaticDim(total)) fail("concat along a symbolic axis");
        total += d;
      }
      const shape = [...ins[0]!.shape];
      shape[axis] = total;
      return [{ dtype, shape }];
    },
  },
  split: {
    arity: [1, 1],
    infer: ([x], a) => {
      const axis = normAxis(a.axis, x!.shape.length);
      const d = x!.shape[axis]!;
      const sum = a.sizes.reduce((s, v) => s + v, 0);
      if (d !== sum) fail(`sizes ${JSON.stringify(a.sizes)} do not sum to dim ${d}`);
      return a.sizes.map((s) => {
        const shape = [...x!.shape];
        shape[axis] = s;
        return { dtype: x!.dtype, shape };
      });
    },
  },
  slice: {
    arity: [1, 1],
    infer: ([x], a) => {
      if (a.starts.length !== a.axes.length || a.ends.length !== a.axes.length)
        fail("starts, ends and axes must have equal lengths");
      const shape = [...x!.shape];
      for (let i = 0; i < a.axes.length; i++) {
        const axis = normAxis(a.axes[i]!, shape.length);
        shape[axis] = sliceDim(shape[axis]!, a.starts[i]!, a.ends[i]!);
      }
      return [{ dtype: x!.dtype, shape }];
    },
  },
  pad: {
    arity: [1, 1],
    infer: ([x], a) => {
      const r = x!.shape.length;
      if (a.pads.length !== 2 * r || a.pads.some((p) => !Number.isInteger(p) || p < 0))
        fail(`pads must be ${2 * r} non-negative integers, got ${JSON.stringify(a.pads)}`);
      const shape = x!.shape.map((d, i) => {
        const extra = a.pads[i]! + a.pads[i + r]!;
        if (extra === 0) return d;
        if (!isStaticDim(d)) fail(`cannot pad symbolic dim ${d}`);
        return d + extra;
      });
      return [{ dtype: x!.dtype, shape }];
    },
  },
  gather: {
    arity: [2, 2],
    infer: ([x, idx], a) => {
      if (idx!.dtype !== "int64") fail(`indices must be int64, got ${idx!.dtype}`);
      const axis = normAxis(a.axis, x!.shape.length);
      return [
        { dtype: x!.dtype, shape: [...x!.shape.slice(0, axis), ...idx!.shape, ...x!.shape.slice(axis + 1)] },
      ];
    },
  },
  indexAdd: {
    arity: [3, 3],
    infer: ([base, idx, upd], a) => {
      if (idx!.dtype !== "int64" || idx!.shape.length !== 1) fail("indices must be 1-D int64");
      sameDType([base!, upd!]);
      const axis = normAxis(a.axis, base!.shape.length);
      const want = [...base!.shape];
      want[axis] = idx!.shape[0]!;
      if (upd!.shape.length !== want.length || !upd!.shape.every((d, i) => dimsEqual(d, want[i]!)))
        fail(`updates ${formatShape(upd!.shape)} must have shape ${formatShape(want)}`);
      return [{ ...base! }];
    },
  },
  expand: {
    arity: [1, 1],
    infer: ([x], a) => {
      const out = broadcastShapes(x!.shape, a.shape);
      if (!out.every((d, i) => dimsEqual(d, a.shape[i]!)))
        fail(`cannot expand ${formatShape(x!.shape)} to ${formatShape(a.shape)}`);
      return [{ dtype: x!.dtype, shape: a.shape }];
    },
  },
  full: { arity: [0, 0], infer: (_ins, a) => [{ dtype: a.dtype, shape: a.shape }] },
  dimSize: {
    arity: [1, 1],
    infer: ([x], a) => {
      for (const ax of a.axes) normAxis(ax, x!.shape.length);
      return [{ dtype: a.dtype, shape: [] }];
    },
  },
  softmaxCrossEntropy: {
    arity: [2, 2],
    infer: ([logits, labels], a) => {
      requireFloat(logits!, "logits");
      if (logits!.shape.length !== 2) fail(`logits must be [B,C], got ${formatShape(logits!.shape)}`);
      if (
        labels!.dtype !== "int64" ||
        labels!.shape.length !== 1 ||
        !dimsEqual(labels!.shape[0]!, logits!.shape[0]!)
      )
        fail(`labels must be int64[${logits!.shape[0]}], got ${labels!.dtype}${formatShape(labels!.shape)}`);
      if (!(a.smoothing >= 0 && a.smoothing < 1))
        fail(`label smoothing must be in [0,1), got ${a.smoothing}`);
      if (!isStaticDim(logits!.shape[1]!)) fail("number of classes must be static");
      return [{ dtype: logits!.dtype, shape: [] }, { ...logits! }];
    },
  },
  softCrossEntropy: {
    arity: [2, 2],
    infer: ([logits, targets]) => {
      requireFloat(logits!, "logits");
      sameDType([logits!, targets!]);
      if (logits!.shape.length !== 2) fail(`logits must be [B,C], got ${formatShape(logits!.shape)}`);
      if (!targets!.shape.every((d, i) => dimsEqual(d, logits!.shape[i]!)) || targets!.shape.length !== 2)
        fail(`targets ${formatShape(targets!.shape)} must match logits ${formatShape(logits!.shape)}`);
      return [{ dtype: logits!.dtype, shape: [] }, { ...logits! }];
    },
  },
  bceWithLogits: {
    arity: [2, 2],
    infer: ([logits, targets]) => {
      requireFloat(logits!, "logits");
      sameDType([logits!, targets!]);
      if (
        targets!.shape.length !== logits!.shape.length ||
        !targets!.shape.every((d, i) => dimsEqual(d, logits!.shape[i]!))
      )
        fail(`targets ${formatShape(targets!.shape)} must match logits ${formatShape(logits!.shape)}`);
      return [{ dtype: logits!.dtype, shape: [] }];
    },
  },
  loop: {
    arity: [0, Number.POSITIVE_INFINITY],
    infer: (ins, a) => {
      const body = a.body;
      if (!Number.isInteger(a.steps) || a.steps < 1) fail(`steps must be a positive integer, got ${a.steps}`);
      const carried = body.inputs.length - 2;
      if (carried !== ins.length)
        fail(`body takes ${carried} carried values (after iter, cond) but loop got ${ins.length}`);
      ins.forEach((t, i) => {
        const b = body.inputs[i + 2]!;
        if (
          t.dtype !== b.dtype ||
          !t.shape.every((d, j) => dimsEqual(d, b.shape[j]!)) ||
          t.shape.length !== b.shape.length
        )
          fail(
            `carried value ${i}: initial ${t.dtype}${formatShape(t.shape)} vs body ${b.dtype}${formatShape(b.shape)}`,
          );
      });
      const outs = body.outputs.slice(1).map((o) => o.value);
      return outs.map((v, i) =>
        i < carried ? { dtype: v.dtype, shape: v.shape } : { dtype: v.dtype, shape: [a.steps, ...v.shape] },
      );
    },
  },
};
