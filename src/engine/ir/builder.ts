/**
 * GraphBuilder: the only way nodes enter a graph. Every method checks its operands through the
 * op table (ops.ts) and fails with the op's name and the operand types, so a wrong shape is
 * caught where the model is written, not deep inside ONNX Runtime.
 *
 * Binary ops accept plain numbers, which become scalar constants of the other operand's dtype.
 */
import { allocData, type DType, dtypeOfData, type TensorData } from "./dtype.ts";
import { Graph, Node, Value } from "./graph.ts";
import { OPS, type OpAttrs, type OpName, type TensorType } from "./ops.ts";
import {
  checkDim,
  type Dim,
  divDim,
  formatShape,
  isStaticDim,
  normAxis,
  numel,
  type Shape,
  shapesEqual,
} from "./shape.ts";

export type Operand = Value | number;

export interface LoopBodyResult {
  /** new values of the loop-carried state, same order and types as the initial values */
  carried: Value[];
  /** per-iteration values, stacked along a new leading axis of length `steps` */
  scans?: Value[];
}

export class GraphBuilder {
  readonly graph: Graph;
  private readonly scalarCache = new Map<string, Value>();

  constructor(graph: Graph | string = "graph") {
    this.graph = typeof graph === "string" ? new Graph(graph) : graph;
  }

  // ---- graph interface ---------------------------------------------------------------------

  input(name: string, dtype: DType, shape: Shape): Value {
    if (this.graph.inputs.some((v) => v.name === name)) throw new Error(`duplicate graph input "${name}"`);
    const v = new Value(this.graph, this.graph.nextId(), "input", dtype, shape.map(checkDim));
    v.name = name;
    this.graph.inputs.push(v);
    return v;
  }

  output(name: string, value: Value): Value {
    if (this.graph.outputs.some((o) => o.name === name)) throw new Error(`duplicate graph output "${name}"`);
    this.graph.outputs.push({ name, value: this.local(value) });
    return value;
  }

  constant(data: TensorData, shape: readonly number[], dtype?: DType): Value {
    const n = shape.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new Error(`constant: ${data.length} values for shape ${formatShape(shape)}`);
    const dt = dtype ?? dtypeOfData(data);
    const v = new Value(this.graph, this.graph.nextId(), "constant", dt, shape, undefined, data);
    this.graph.constants.push(v);
    return v;
  }

  /**
   * Marks what `build` adds as one recomputable segment fed by `input` (see Segment in
   * graph.ts); returns what `build` returns. Segments do not nest.
   */
  segment<T>(input: Value, build: () => T): T {
    const from = this.graph.nodes.length;
    const result = build();
    const last = this.graph.segments.at(-1);
    if (last && last.to > from) throw new Error("segment: segments do not nest");
    this.graph.segments.push({ input: this.local(input), from, to: this.graph.nodes.length });
    return result;
  }

  /** A scalar constant, shared between uses of the same value and dtype. */
  scalar(x: number, dtype: DType = "float32"): Value {
    const key = `${dtype}:${Object.is(x, -0) ? "-0" : x}`;
    let v = this.scalarCache.get(key);
    if (!v) {
      const data = allocData(dtype, 1);
      if (data instanceof BigInt64Array) data[0] = BigInt(x);
      else data[0] = x;
      v = this.constant(data, [], dtype);
      this.scalarCache.set(key, v);
    }
    return v;
  }

  /** A 1-D int64 constant (indices, shapes). */
  int64s(values: readonly number[]): Value {
    return this.constant(
      BigInt64Array.from(values, (x) => BigInt(x)),
      [values.length],
      "int64",
    );
  }

  /**
   * Apply an op: checks arity and types with the op table, creates the node, returns its outputs.
   * Values from enclosing graphs are captured automatically (loop bodies read outer tensors).
   */
  apply<K extends OpName>(op: K, inputs: readonly Value[], attrs: OpAttrs<Graph>[K]): Value[] {
    const def = OPS[op];
    const ins = inputs.map((v) => this.local(v));
    const describe = () => ins.map((v) => `${v.dtype}${formatShape(v.shape)}`).join(", ");
    if (ins.length < def.arity[0] || ins.length > def.arity[1])
      throw new Error(`${op}: expected ${def.arity[0]}..${def.arity[1]} inputs, got ${ins.length}`);
    let types: TensorType[];
    try {
      types = def.infer(
        ins.map((v) => ({ dtype: v.dtype, shape: v.shape })),
        attrs,
      );
    } catch (e) {
      throw new Error(`${op}(${describe()}): ${(e as Error).message}`);
    }
    const node = new Node(this.graph.nextId(), op, ins, attrs);
    for (const t of types)
      node.outputs.push(new Value(this.graph, this.graph.nextId(), "node", t.dtype, t.shape, node));
    this.graph.nodes.push(node as unknown as Node);
    return node.outputs;
  }

  private one<K extends OpName>(op: K, inputs: readonly Value[], attrs: OpAttrs<Graph>[K]): Value {
    return this.apply(op, inputs, attrs)[0]!;
  }

  /** The value as seen from this graph (capturing it from an enclosing graph if needed). */
  local(v: Value): Value {
    return capture(this.graph, v);
  }

  private operands(a: Operand, b: Operand): [Value, Value] {
    if (typeof a === "number" && typeof b === "number") throw new Error("binary op on two numbers");
    const dtype = typeof a === "number" ? (b as Value).dtype : a.dtype;
    return [
      typeof a === "number" ? this.scalar(a, dtype) : a,
      typeof b === "number" ? this.scalar(b, dtype) : b,
    ];
  }

  // ---- elementwise -------------------------------------------------------------------------

  add(a: Operand, b: Operand): Value {
    return this.one("add", this.operands(a, b), {});
  }
  sub(a: Operand, b: Operand): Value {
    return this.one("sub", this.operands(a, b), {});
  }
  mul(a: Operand, b: Operand): Value {
    return this.one("mul", this.operands(a, b), {});
  }
  div(a: Operand, b: Operand): Value {
    return this.one("div", this.operands(a, b), {});
  }
  pow(a: Operand, b: Operand): Value {
    return this.one("pow", this.operands(a, b), {});
  }
  max(a: Operand, b: Operand): Value {
    return this.one("max", this.operands(a, b), {});
  }
  min(a: Operand, b: Operand): Value {
    return this.one("min", this.operands(a, b), {});
  }
  equal(a: Operand, b: Operand): Value {
    return this.one("equal", this.operands(a, b), {});
  }
  less(a: Operand, b: Operand): Value {
    return this.one("less", this.operands(a, b), {});
  }
  greater(a: Operand, b: Operand): Value {
    return this.one("greater", this.operands(a, b), {});
  }
  neg(x: Value): Value {
    return this.one("neg", [x], {});
  }
  sqrt(x: Value): Value {
    return this.one("sqrt", [x], {});
  }
  exp(x: Value): Value {
    return this.one("exp", [x], {});
  }
  log(x: Value): Value {
    return this.one("log", [x], {});
  }
  erf(x: Value): Value {
    return this.one("erf", [x], {});
  }
  tanh(x: Value): Value {
    return this.one("tanh", [x], {});
  }
  relu(x: Value): Value {
    return this.one("relu", [x], {});
  }
  sigmoid(x: Value): Value {
    return this.one("sigmoid", [x], {});
  }
  abs(x: Value): Value {
    return this.one("abs", [x], {});
  }
  sign(x: Value): Value {
    return this.one("sign", [x], {});
  }
  /** Exact (erf-based) GELU, as one op with its own backward. */
  gelu(x: Value): Value {
    return this.one("gelu", [x], {});
  }
  /**
   * g·GELU'(x): the gradient of gelu, one op so that its lowering can choose its passes. With
   * `halvedGradient`, g is already ½ of the incoming gradient (see OpAttrs.geluGrad).
   */
  geluGrad(x: Value, g: Value, opts: { halvedGradient?: boolean } = {}): Value {
    return this.one("geluGrad", [x, g], { halvedGradient: opts.halvedGradient ?? false });
  }
  identity(x: Value): Value {
    return this.one("identity", [x], {});
  }
  /** Forward identity that no gradient passes (autodiff treats its output as a constant). */
  stopGradient(x: Value): Value {
    return this.one("stopGradient", [x], {});
  }
  where(cond: Value, a: Operand, b: Operand): Value {
    return this.one("where", [cond, ...this.operands(a, b)], {});
  }
  cast(x: Value, to: DType): Value {
    return x.dtype === to ? x : this.one("cast", [x], { to });
  }

  // ---- linear algebra ----------------------------------------------------------------------

  /** Batched matmul with numpy broadcasting of the batch axes; trans* swaps an operand's last two axes. */
  matmul(a: Value, b: Value, opts: { transA?: boolean; transB?: boolean } = {}): Value {
    return this.one("matmul", [a, b], { transA: opts.transA ?? false, transB: opts.transB ?? false });
  }

  /** alpha·op(A)·op(B) + C for 2-D operands (C broadcast). */
  gemm(
    a: Value,
    b: Value,
    c?: Value,
    opts: { transA?: boolean; transB?: boolean; alpha?: number } = {},
  ): Value {
    return this.one("gemm", c ? [a, b, c] : [a, b], {
      transA: opts.transA ?? false,
      transB: opts.transB ?? false,
      alpha: opts.alpha ?? 1,
    });
  }

  // ---- normalisation -----------------------------------------------------------------------

  softmax(x: Value, axis = -1): Value {
    return this.one("softmax", [x], { axis });
  }
  logSoftmax(x: Value, axis = -1): Value {
    return this.one("logSoftmax", [x], { axis });
  }
  /**
   * LayerNorm over axes [axis, rank) with elementwise affine (scale, bias of the normalised shape);
   * with `scale` and `bias` both undefined, the normalised rows x̂ alone.
   */
  layerNorm(
    x: Value,
    scale: Value | undefined,
    bias: Value | undefined,
    opts: { axis?: number; epsilon?: number } = {},
  ): Value {
    if ((scale === undefined) !== (bias === undefined))
      throw new Error("layerNorm: give both scale and bias, or neither");
    return this.one("layerNorm", scale && bias ? [x, scale, bias] : [x], {
      axis: opts.axis ?? -1,
      epsilon: opts.epsilon ?? 1e-5,
    });
  }

  /**
   * sum = x + skip (+ bias); y = LayerNorm(sum) over the last axis. Returns both: `sum` is the
   * residual stream a pre-norm block carries on, `y` what the next sub-layer reads. Without
   * `affine`, y is the normalised rows x̂ (see layerNorm).
   */
  skipLayerNorm(
    x: Value,
    skip: Value,
    affine: { scale: Value; shift: Value } | undefined,
    opts: { bias?: Value; epsilon?: number } = {},
  ): { y: Value; sum: Value } {
    const bias = opts.bias ? [opts.bias] : [];
    const ins = affine ? [x, skip, affine.scale, affine.shift, ...bias] : [x, skip, ...bias];
    const [y, , , sum] = this.apply("skipLayerNorm", ins, { epsilon: opts.epsilon ?? 1e-5 });
    return { y: y!, sum: sum! };
  }

  // ---- reductions --------------------------------------------------------------------------

  reduceSum(x: Value, axes: number[], keepDims = false): Value {
    return this.one("reduceSum", [x], { axes, keepDims });
  }
  reduceMean(x: Value, axes: number[], keepDims = false): Value {
    return this.one("reduceMean", [x], { axes, keepDims });
  }
  reduceMax(x: Value, axes: number[], keepDims = false): Value {
    return this.one("reduceMax", [x], { axes, keepDims });
  }
  reduceSumSquare(x: Value, axes: number[], keepDims = false): Value {
    return this.one("reduceSumSquare", [x], { axes, keepDims });
  }
  /** Sum over every axis → scalar. */
  sumAll(x: Value): Value {
    return x.rank === 0
      ? x
      : this.reduceSum(
          x,
          x.shape.map((_, i) => i),
        );
  }
  meanAll(x: Value): Value {
    return x.rank === 0
      ? x
      : this.reduceMean(
          x,
          x.shape.map((_, i) => i),
        );
  }
  argMax(x: Value, axis = -1, keepDims = false): Value {
    return this.one("argMax", [x], { axis, keepDims });
  }
  cumSum(x: Value, axis = 0, reverse = false): Value {
    return this.one("cumSum", [x], { axis, reverse });
  }

  // ---- layout ------------------------------------------------------------------------------

  /** Reshape; one target dim may be -1 (inferred, symbolically if needed). */
  reshape(x: Value, shape: readonly Dim[]): Value {
    const target = resolveReshape(x.shape, shape);
    if (shapesEqual(target, x.shape)) return x;
    return this.one("reshape", [x], { shape: target });
  }
  /** Collapse to 2-D [prod(leading), last] — the shape under which a linear layer is one GEMM. */
  flattenTo2d(x: Value): Value {
    return x.rank === 2 ? x : this.reshape(x, [-1, x.shape.at(-1)!]);
  }
  transpose(x: Value, perm: number[]): Value {
    return this.one("transpose", [x], { perm });
  }
  concat(xs: readonly Value[], axis: number): Value {
    return xs.length === 1 ? xs[0]! : this.one("concat", xs, { axis });
  }
  split(x: Value, axis: number, sizes: number[]): Value[] {
    return this.apply("split", [x], { axis, sizes });
  }
  /** x[..., start:end, ...] along one axis (end clamped; Infinity means "to the end"). */
  slice(x: Value, axis: number, start: number, end: number): Value {
    return this.sliceAxes(x, [start], [end], [axis]);
  }
  sliceAxes(x: Value, starts: number[], ends: number[], axes: number[]): Value {
    const clamp = (e: number) => (e === Number.POSITIVE_INFINITY ? Number.MAX_SAFE_INTEGER : e);
    return this.one("slice", [x], { starts, ends: ends.map(clamp), axes });
  }
  pad(x: Value, pads: number[]): Value {
    return this.one("pad", [x], { pads });
  }
  gather(x: Value, indices: Value, axis = 0): Value {
    return this.one("gather", [x, indices], { axis });
  }
  indexAdd(base: Value, indices: Value, updates: Value, axis = 0): Value {
    return this.one("indexAdd", [base, indices, updates], { axis });
  }
  expand(x: Value, shape: Shape): Value {
    const target = shape.map(checkDim);
    if (shapesEqual(target, x.shape)) return x;
    return this.one("expand", [x], { shape: target });
  }
  unsqueeze(x: Value, axis: number): Value {
    const a = normAxis(axis, x.rank + 1);
    return this.reshape(x, [...x.shape.slice(0, a), 1, ...x.shape.slice(a)]);
  }
  full(shape: Shape, value: number, dtype: DType = "float32"): Value {
    return this.one("full", [], { shape: shape.map(checkDim), dtype, value });
  }
  zeros(shape: Shape, dtype: DType = "float32"): Value {
    return this.full(shape, 0, dtype);
  }
  /** Product of x's dims over `axes` as a scalar; a constant when those dims are static. */
  dimSize(x: Value, axes: number[], dtype: DType = "float32"): Value {
    const d = numel(axes.map((a) => x.shape[normAxis(a, x.rank)]!));
    if (isStaticDim(d)) return this.scalar(d, dtype);
    return this.one("dimSize", [x], { axes, dtype });
  }

  // ---- losses (mean over the batch) --------------------------------------------------------

  /** Cross-entropy of softmax(logits[B,C]) against int64 labels[B], with label smoothing ε. */
  softmaxCrossEntropy(logits: Value, labels: Value, smoothing = 0): Value {
    return this.apply("softmaxCrossEntropy", [logits, labels], { smoothing })[0]!;
  }
  /** Cross-entropy against soft targets[B,C] (Mixup/CutMix). */
  softCrossEntropy(logits: Value, targets: Value): Value {
    return this.apply("softCrossEntropy", [logits, targets], {})[0]!;
  }
  /** Mean binary cross-entropy with logits (DeiT-III's BCE option), numerically stable. */
  bceWithLogits(logits: Value, targets: Value): Value {
    return this.one("bceWithLogits", [logits, targets], {});
  }

  // ---- control flow ------------------------------------------------------------------------

  /**
   * Run `body` `steps` times. The body gets the iteration number (int64 scalar) and the current
   * loop-carried values and returns their next values plus per-iteration "scan" values; it may
   * read any value of this graph directly (captured by name, not copied per iteration).
   */
  loop(
    steps: number,
    initial: readonly Value[],
    body: (b: GraphBuilder, iter: Value, carried: Value[]) => LoopBodyResult,
  ): { carried: Value[]; scans: Value[] } {
    const bodyGraph = new Graph(`${this.graph.name}/loop`, this.graph);
    const bb = new GraphBuilder(bodyGraph);
    const iter = bb.input("iter", "int64", []);
    const cond = bb.input("cond", "bool", []);
    const carriedIn = initial.map((v, i) => bb.input(`carried${i}`, v.dtype, v.shape));
    const result = body(bb, iter, carriedIn);
    if (result.carried.length !== initial.length)
      throw new Error(
        `loop: body returned ${result.carried.length} carried values, expected ${initial.length}`,
      );
    bb.output("cond_out", bb.identity(cond));
    for (const [i, v] of result.carried.entries()) bb.output(`carried${i}_out`, v);
    for (const [i, v] of (result.scans ?? []).entries()) bb.output(`scan${i}_out`, v);
    const outs = this.apply("loop", initial, { steps, body: bodyGraph });
    return { carried: outs.slice(0, initial.length), scans: outs.slice(initial.length) };
  }
}

/** Bring `v` into graph `g`, capturing through every enclosing graph in between. */
function capture(g: Graph, v: Value): Value {
  if (v.graph === g) return v;
  if (!g.parent || !g.isSelfOrAncestor(v.graph))
    throw new Error(
      `value ${v} belongs to graph "${v.graph.name}", not to "${g.name}" or an enclosing graph`,
    );
  const existing = g.captures.get(v);
  if (existing) return existing;
  const outer = capture(g.parent, v);
  const c = new Value(g, g.nextId(), "capture", v.dtype, v.shape, undefined, undefined, outer);
  c.name = v.name;
  g.captures.set(v, c);
  return c;
}

function resolveReshape(from: Shape, to: readonly Dim[]): Dim[] {
  const infer = to.filter((d) => d === -1).length;
  if (infer > 1) throw new Error(`reshape: more than one -1 in ${formatShape(to)}`);
  if (infer === 0) return to.map(checkDim);
  const known = to.filter((d) => d !== -1).map(checkDim);
  const rest = divDim(numel(from), numel(known));
  if (rest === undefined)
    throw new Error(`reshape: cannot reshape ${formatShape(from)} to ${formatShape(to)}`);
  return to.map((d) => (d === -1 ? rest : checkDim(d)));
}
