/**
 * THE table of vector-Jacobian products: one rule per op, in the spirit of PyTorch's
 * derivatives.yaml and tinygrad's gradient.py. A rule receives the node, its inputs `x`, its
 * outputs `y` and the incoming output gradients `dy`, and returns one gradient per input
 * (undefined where that input needs none, as `needs` says). Rules only build graph nodes — the
 * backward pass is ordinary ONNX ops, since ONNX Runtime has no gradient kernels.
 *
 * Conventions: gradients of broadcasting ops are reduced with `sumToShape`; composite ops (gelu,
 * layerNorm, the losses) use their closed-form backward, not a chain through their pieces;
 * the weight gradient of a linear layer over [B,N,D] inputs is one GEMM over the flattened
 * batch. The traversal (gradients.ts) checks every returned gradient's shape and dtype.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Node, Value } from "../ir/graph.ts";
import { type OpName, skipLayerNormInputs } from "../ir/ops.ts";
import { isStaticDim, normAxis, shapesEqual } from "../ir/shape.ts";
import { keepDimsShape, sumToShape, unreduce } from "./broadcast.ts";

export interface VjpArgs<K extends OpName> {
  b: GraphBuilder;
  node: Node<K>;
  x: readonly Value[];
  y: readonly Value[];
  /** gradient of the loss w.r.t. each output; at least one is defined */
  dy: readonly (Value | undefined)[];
  /** which inputs need a gradient (they depend on a differentiated value and are float) */
  needs: readonly boolean[];
}

export type VjpRule<K extends OpName> = (args: VjpArgs<K>) => (Value | undefined)[];

/**
 * Ops whose outputs rightly carry no gradient: comparisons and argMax (bool / int outputs),
 * dimSize and full (no dependence on input data), sign (zero wherever defined), stopGradient (by
 * definition). Gradients stop there and the traversal goes on.
 */
export const ZERO_GRADIENT = "zero-gradient" as const;

/**
 * An op that has a derivative the engine does not compute. Differentiating through it — a path
 * from a differentiated value through the op to the loss — throws (gradients.ts), naming the op
 * and the values, instead of leaving the gradient silently zero.
 */
export interface NoRule {
  readonly noRule: string;
}

const noRule = (reason: string): NoRule => ({ noRule: reason });

/** One entry of the table. */
export type VjpEntry<K extends OpName> = VjpRule<K> | typeof ZERO_GRADIENT | NoRule;

function only(dy: readonly (Value | undefined)[], op: string): Value {
  if (dy.slice(1).some((g) => g !== undefined))
    throw new Error(`${op}: gradients through auxiliary outputs are not supported`);
  return dy[0]!;
}

/** Apply `f` only where the input needs a gradient. */
function when(need: boolean | undefined, f: () => Value): Value | undefined {
  return need ? f() : undefined;
}

// x̂ = (x−μ)/σ;  dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ⊙x̂)) with ĝ = g⊙scale, over the normalised axes
// Over the last axis alone (every transformer LayerNorm) the two row means are matrix-vector
// products with the scale — mean(g⊙scale) = g·scale/D, mean(g⊙scale⊙x̂) = (g⊙x̂)·scale/D — which
// read their operand once and write only [.., 1]; g⊙x̂ is shared with the scale's gradient.
// Without the affine (`scale` undefined) ĝ = g and x̂ is the op's own output `y`, so neither is
// recomputed: 7 passes over the rows instead of 12 (the scale's and shift's gradients then come
// from the linear layer they were folded into, on [out, in]-sized tensors).
// Returns [dx, dscale, dshift] for the inputs `needs` asks for.
function layerNormVjp(
  b: GraphBuilder,
  { x, scale, mean, invStd, y }: { x: Value; scale: Value | undefined; mean: Value; invStd: Value; y: Value },
  g: Value,
  axisAttr: number,
  needs: readonly (boolean | undefined)[],
): (Value | undefined)[] {
  const axis = normAxis(axisAttr, x.rank);
  const normAxes = Array.from({ length: x.rank - axis }, (_, i) => axis + i);
  const batchAxes = Array.from({ length: axis }, (_, i) => i);
  const xhat = scale ? b.mul(b.sub(x, mean), invStd) : y;
  const lastAxis = axis === x.rank - 1 && isStaticDim(x.shape[axis]!) && x.rank >= 2;
  const needGX = needs[1] || (needs[0] && lastAxis);
  const gx = needGX ? b.mul(g, xhat) : undefined;
  const dx = when(needs[0], () => {
    const gh = scale ? b.mul(g, scale) : g;
    let meanG: Value;
    let meanGX: Value;
    if (lastAxis) {
      // Row means as one GEMV each, with the 1/d in the column so the [rows, 1] results need no
      // scaling pass of their own (two kernels fewer per norm).
      const d = x.shape[axis] as number;
      const col = scale ? b.reshape(b.mul(scale, 1 / d), [d, 1]) : b.full([d, 1], 1 / d, x.dtype);
      meanG = b.matmul(g, col);
      meanGX = b.matmul(gx!, col);
    } else {
      meanG = b.reduceMean(gh, normAxes, true);
      meanGX = b.reduceMean(b.mul(gh, xhat), normAxes, true);
    }
    return b.mul(b.sub(b.sub(gh, meanG), b.mul(xhat, meanGX)), invStd);
  });
  const reduceBatch = (t: Value) => (batchAxes.length ? b.reduceSum(t, batchAxes) : t);
  return [dx, when(needs[1], () => reduceBatch(gx!)), when(needs[2], () => reduceBatch(g))];
}

/**
 * ½·g as one GEMM when g is a GEMM's output (in a transformer MLP, g reaching GELU is fc2's input
 * gradient): the same GEMM with alpha halved — exact, since scaling by ½ is — so that GELU's
 * backward saves its ½ pass (OpAttrs.geluGrad). The GEMM that made g is left unread and pruned
 * at the end of `gradients`. Undefined when g comes from anything else.
 */
function halvedGemm(b: GraphBuilder, g: Value): Value | undefined {
  const gemm = g.producer;
  if (gemm?.op !== "gemm" || gemm.inputs.length !== 2) return undefined;
  const { transA, transB, alpha } = (gemm as Node<"gemm">).attrs;
  return b.gemm(gemm.inputs[0]!, gemm.inputs[1]!, undefined, { transA, transB, alpha: alpha * 0.5 });
}

/**
 * g reshaped to `shape`, reading through what made g when that saves a kernel: a reshape
 * (reshape of a reshape is one reshape) or a keepDims reduceSum whose result without the kept
 * axes already has `shape` (a [1, D] broadcast gradient → a [D] parameter). The producer, then
 * unread, is pruned at the end of `gradients`.
 */
function reshapeGradient(b: GraphBuilder, g: Value, shape: Value["shape"]): Value {
  const made = g.producer;
  if (made?.op === "reshape") return reshapeGradient(b, made.inputs[0]!, shape);
  if (made?.op === "reduceSum") {
    const { axes, keepDims } = (made as Node<"reduceSum">).attrs;
    const x = made.inputs[0]!;
    const reduced = new Set(axes.map((a) => normAxis(a, x.rank)));
    const squeezed = x.shape.filter((_, i) => !reduced.has(i));
    if (keepDims && shapesEqual(squeezed, shape)) return b.reduceSum(x, axes, false);
  }
  return b.reshape(g, shape);
}

export const VJP_RULES: { [K in OpName]: VjpEntry<K> } = {
  // ---- elementwise binary (broadcast gradients are summed back to the operand's shape) ------
  add: ({ b, x: [a, c], dy: [g], needs }) => [
    when(needs[0], () => sumToShape(b, g!, a!.shape)),
    when(needs[1], () => sumToShape(b, g!, c!.shape)),
  ],
  sub: ({ b, x: [a, c], dy: [g], needs }) => [
    when(needs[0], () => sumToShape(b, g!, a!.shape)),
    when(needs[1], () => sumToShape(b, b.neg(g!), c!.shape)),
  ],
  mul: ({ b, x: [a, c], dy: [g], needs }) => [
    when(needs[0], () => sumToShape(b, b.mul(g!, c!), a!.shape)),
    when(needs[1], () => sumToShape(b, b.mul(g!, a!), c!.shape)),
  ],
  // y = a/c:  da = g/c,  dc = −g·y/c
  div: ({ b, x: [a, c], y: [y], dy: [g], needs }) => [
    when(needs[0], () => sumToShape(b, b.div(g!, c!), a!.shape)),
    when(needs[1], () => sumToShape(b, b.neg(b.div(b.mul(g!, y!), c!)), c!.shape)),
  ],
  // y = a^c:  da = g·c·a^(c−1),  dc = g·y·ln a
  pow: ({ b, x: [a, c], y: [y], dy: [g], needs }) => [
    when(needs[0], () => sumToShape(b, b.mul(g!, b.mul(c!, b.pow(a!, b.sub(c!, 1)))), a!.shape)),
    when(needs[1], () => sumToShape(b, b.mul(g!, b.mul(y!, b.log(a!))), c!.shape)),
  ],
  // ties send the gradient to the first operand
  max: ({ b, x: [a, c], dy: [g], needs }) => {
    const cWins = b.less(a!, c!);
    return [
      when(needs[0], () => sumToShape(b, b.where(cWins, 0, g!), a!.shape)),
      when(needs[1], () => sumToShape(b, b.where(cWins, g!, 0), c!.shape)),
    ];
  },
  min: ({ b, x: [a, c], dy: [g], needs }) => {
    const cWins = b.greater(a!, c!);
    return [
      when(needs[0], () => sumToShape(b, b.where(cWins, 0, g!), a!.shape)),
      when(needs[1], () => sumToShape(b, b.where(cWins, g!, 0), c!.shape)),
    ];
  },
  equal: ZERO_GRADIENT,
  less: ZERO_GRADIENT,
  greater: ZERO_GRADIENT,

  // ---- elementwise unary -------------------------------------------------------------------
  neg: ({ b, dy: [g] }) => [b.neg(g!)],
  sqrt: ({ b, y: [y], dy: [g] }) => [b.div(b.mul(g!, 0.5), y!)],
  exp: ({ b, y: [y], dy: [g] }) => [b.mul(g!, y!)],
  log: ({ b, x: [x], dy: [g] }) => [b.div(g!, x!)],
  // d erf(x) = 2/√π · e^{−x²}
  erf: ({ b, x: [x], dy: [g] }) => [b.mul(g!, b.mul(b.exp(b.neg(b.mul(x!, x!))), 2 / Math.sqrt(Math.PI)))],
  tanh: ({ b, y: [y], dy: [g] }) => [b.mul(g!, b.sub(1, b.mul(y!, y!)))],
  relu: ({ b, y: [y], dy: [g] }) => [b.where(b.greater(y!, 0), g!, 0)],
  sigmoid: ({ b, y: [y], dy: [g] }) => [b.mul(g!, b.mul(y!, b.sub(1, y!)))],
  abs: ({ b, x: [x], dy: [g] }) => [b.mul(g!, b.sign(x!))],
  sign: ZERO_GRADIENT,
  // GELU(x) = x·Φ(x):  d/dx = Φ(x) + x·φ(x),  Φ = ½(1 + erf(x/√2)),  φ = e^{−x²/2}/√(2π).
  // The product g·GELU'(x) is one op, geluGrad, whose lowering spells out the passes (lower.ts).
  gelu: ({ b, x: [x], dy: [g] }) => {
    const halved = halvedGemm(b, g!);
    return [halved ? b.geluGrad(x!, halved, { halvedGradient: true }) : b.geluGrad(x!, g!)];
  },
  geluGrad: noRule("second derivatives of GELU are not implemented"),
  identity: ({ dy: [g] }) => [g],
  stopGradient: ZERO_GRADIENT,
  where: ({ b, x: [c, a, e], dy: [g], needs }) => [
    undefined,
    when(needs[1], () => sumToShape(b, b.where(c!, g!, 0), a!.shape)),
    when(needs[2], () => sumToShape(b, b.where(c!, 0, g!), e!.shape)),
  ],
  cast: ({ b, x: [x], dy: [g], needs }) => [when(needs[0], () => b.cast(g!, x!.dtype))],

  // ---- linear algebra ----------------------------------------------------------------------
  // With A' = op(A), B' = op(B):  dA' = g·B'ᵀ,  dB' = A'ᵀ·g; transposes folded into trans flags.
  matmul: ({ b, node, x: [A, B], dy: [g], needs }) => {
    const { transA, transB } = node.attrs;
    const dA = when(needs[0], () => {
      const full = transA
        ? b.matmul(B!, g!, { transA: transB, transB: true })
        : b.matmul(g!, B!, { transB: !transB });
      return sumToShape(b, full, A!.shape);
    });
    const dB = when(needs[1], () => {
      if (B!.rank === 2 && A!.rank > 2 && !transA) {
        // Linear layer over [.., D] inputs: one GEMM over the flattened batch, not a batched
        // matmul followed by a reduction.
        const a2 = b.flattenTo2d(A!);
        const g2 = b.flattenTo2d(g!);
        return transB ? b.matmul(g2, a2, { transA: true }) : b.matmul(a2, g2, { transA: true });
      }
      const full = transB
        ? b.matmul(g!, A!, { transA: true, transB: transA })
        : b.matmul(A!, g!, { transA: !transA });
      return sumToShape(b, full, B!.shape);
    });
    return [dA, dB];
  },
  gemm: ({ b, node, x: [A, B, C], dy: [g], needs }) => {
    const { transA, transB, alpha } = node.attrs;
    const dA = when(needs[0], () =>
      transA
        ? b.gemm(B!, g!, undefined, { transA: transB, transB: true, alpha })
        : b.gemm(g!, B!, undefined, { transB: !transB, alpha }),
    );
    const dB = when(needs[1], () =>
      transB
        ? b.gemm(g!, A!, undefined, { transA: true, transB: transA, alpha })
        : b.gemm(A!, g!, undefined, { transA: !transA, alpha }),
    );
    return [dA, dB, when(needs[2], () => sumToShape(b, g!, C!.shape))];
  },

  // ---- normalisation -----------------------------------------------------------------------
  // dx = y ⊙ (g − Σ g⊙y)
  softmax: ({ b, node, y: [y], dy: [g] }) => {
    const gy = b.mul(g!, y!);
    return [b.sub(gy, b.mul(y!, b.reduceSum(gy, [node.attrs.axis], true)))];
  },
  // dx = g − softmax ⊙ Σ g
  logSoftmax: ({ b, node, y: [y], dy: [g] }) => [
    b.sub(g!, b.mul(b.exp(y!), b.reduceSum(g!, [node.attrs.axis], true))),
  ],
  layerNorm: ({ b, node, x: [x, scale], y: [y, mean, invStd], dy, needs }) =>
    layerNormVjp(
      b,
      { x: x!, scale, mean: mean!, invStd: invStd!, y: y! },
      only(dy, "layerNorm"),
      node.attrs.axis,
      needs,
    ),
  // sum = x + skip (+ bias), y = LayerNorm(sum): the gradient reaching `sum` is what comes in
  // through the residual stream (dy[3]) plus LayerNorm's dx; x, skip and bias all receive it.
  skipLayerNorm: ({ b, x: ins, y: [y, mean, invStd, sum], dy, needs }) => {
    if (dy[1] || dy[2]) throw new Error("skipLayerNorm: gradients through mean/invStd are not supported");
    const { x, scale, bias } = skipLayerNormInputs(ins);
    const need = skipLayerNormInputs(needs);
    const [gy, gSum] = [dy[0], dy[3]];
    const [dNorm, dScale, dShift] = gy
      ? layerNormVjp(b, { x: sum!, scale, mean: mean!, invStd: invStd!, y: y! }, gy, -1, [
          need.x || need.skip || !!need.bias,
          need.scale,
          need.shift,
        ])
      : [undefined, undefined, undefined];
    const dSum = dNorm && gSum ? b.add(dNorm, gSum) : (dNorm ?? gSum);
    const rows = Array.from({ length: x.rank - 1 }, (_, i) => i);
    const dBias = when(bias !== undefined && need.bias, () => b.reduceSum(dSum!, rows));
    const dx = when(need.x, () => dSum!);
    const dSkip = when(need.skip, () => dSum!);
    if (!scale) return [dx, dSkip, dBias];
    return [
      dx,
      dSkip,
      dScale ?? (need.scale ? b.zeros(scale.shape, scale.dtype) : undefined),
      dShift ?? (need.shift ? b.zeros(scale.shape, scale.dtype) : undefined),
      dBias,
    ];
  },

  // ---- reductions --------------------------------------------------------------------------
  reduceSum: ({ b, node, x: [x], dy: [g] }) => [
    b.expand(unreduce(b, g!, x!.shape, node.attrs.axes), x!.shape),
  ],
  reduceMean: ({ b, node, x: [x], dy: [g] }) => {
    const count = b.dimSize(x!, node.attrs.axes, x!.dtype);
    return [b.expand(b.div(unreduce(b, g!, x!.shape, node.attrs.axes), count), x!.shape)];
  },
  // gradient shared equally between tied maxima
  reduceMax: ({ b, node, x: [x], y: [y], dy: [g] }) => {
    const kept = keepDimsShape(x!.shape, node.attrs.axes);
    const isMax = b.cast(b.equal(x!, b.reshape(y!, kept)), x!.dtype);
    const ties = b.reduceSum(isMax, node.attrs.axes, true);
    return [b.mul(isMax, b.div(unreduce(b, g!, x!.shape, node.attrs.axes), ties))];
  },
  reduceSumSquare: ({ b, node, x: [x], dy: [g] }) => [
    b.mul(b.mul(x!, 2), unreduce(b, g!, x!.shape, node.attrs.axes)),
  ],
  argMax: ZERO_GRADIENT,
  cumSum: ({ b, node, dy: [g] }) => [b.cumSum(g!, node.attrs.axis, !node.attrs.reverse)],

  // ---- layout ------------------------------------------------------------------------------
  reshape: ({ b, x: [x], dy: [g] }) => [reshapeGradient(b, g!, x!.shape)],
  transpose: ({ b, node, dy: [g] }) => {
    const perm = node.attrs.perm;
    return [
      b.transpose(
        g!,
        perm.map((_, i) => perm.indexOf(i)),
      ),
    ];
  },
  concat: ({ b, node, x, dy: [g], needs }) => {
    const axis = normAxis(node.attrs.axis, g!.rank);
    let offset = 0;
    return x.map((xi, i) => {
      const size = xi.shape[axis] as number;
      const start = offset;
      offset += size;
      return when(needs[i], () => b.slice(g!, axis, start, start + size));
    });
  },
  split: ({ b, node, y, dy }) => [
    b.concat(
      y.map((yi, i) => dy[i] ?? b.zeros(yi.shape, yi.dtype)),
      node.attrs.axis,
    ),
  ],
  slice: ({ b, node, x: [x], dy: [g] }) => {
    const r = x!.rank;
    const pads = new Array<number>(2 * r).fill(0);
    node.attrs.axes.forEach((ax, i) => {
      const axis = normAxis(ax, r);
      const d = x!.shape[axis]!;
      if (!isStaticDim(d)) return; // only full slices of symbolic dims pass shape inference
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
      const start = clamp(node.attrs.starts[i]!);
      const end = Math.max(clamp(node.attrs.ends[i]!), start);
      pads[axis] = start;
      pads[axis + r] = d - end;
    });
    return [b.pad(g!, pads)];
  },
  pad: ({ b, node, x: [x], dy: [g] }) => {
    const r = x!.rank;
    const axes = Array.from({ length: r }, (_, i) => i).filter(
      (i) => node.attrs.pads[i]! + node.attrs.pads[i + r]! > 0,
    );
    if (!axes.length) return [g];
    const starts = axes.map((i) => node.attrs.pads[i]!);
    const ends = axes.map((i) => node.attrs.pads[i]! + (x!.shape[i] as number));
    return [b.sliceAxes(g!, starts, ends, axes)];
  },
  // scatter-add the gradient rows back to the gathered positions (repeated indices accumulate)
  gather: ({ b, node, x: [x, idx], dy: [g] }) => {
    const axis = normAxis(node.attrs.axis, x!.rank);
    const flatIdx = idx!.rank === 1 ? idx! : b.reshape(idx!, [-1]);
    const updShape = [...x!.shape];
    updShape[axis] = flatIdx.shape[0]!;
    const upd = b.reshape(g!, updShape);
    return [b.indexAdd(b.zeros(x!.shape, x!.dtype), flatIdx, upd, axis), undefined];
  },
  indexAdd: ({ b, node, x: [, idx], dy: [g], needs }) => [
    when(needs[0], () => g!),
    undefined,
    when(needs[2], () => b.gather(g!, idx!, node.attrs.axis)),
  ],
  expand: ({ b, x: [x], dy: [g] }) => [sumToShape(b, g!, x!.shape)],
  full: ZERO_GRADIENT,
  dimSize: ZERO_GRADIENT,

  // ---- losses ------------------------------------------------------------------------------
  // d/dlogits = (softmax − target)·g/B with target = (1−ε)·onehot + ε/C
  softmaxCrossEntropy: ({ b, node, x: [logits, labels], y: [, logProb], dy, needs }) => {
    const g = only(dy, "softmaxCrossEntropy");
    const dtype = logits!.dtype;
    const classes = logits!.shape[1] as number;
    const eps = node.attrs.smoothing;
    const onehot = b.cast(
      b.equal(b.unsqueeze(labels!, 1), b.int64s(Array.from({ length: classes }, (_, i) => i))),
      dtype,
    );
    const target = eps > 0 ? b.add(b.mul(onehot, 1 - eps), eps / classes) : onehot;
    const scale = b.div(g, b.dimSize(logits!, [0], dtype));
    return [when(needs[0], () => b.mul(b.sub(b.exp(logProb!), target), scale)), undefined];
  },
  // loss = −mean_b Σ_c t·log p:  dlogits = (p·Σ_c t − t)·g/B,  dtargets = −log p·g/B
  softCrossEntropy: ({ b, x: [logits, targets], y: [, logProb], dy, needs }) => {
    const g = only(dy, "softCrossEntropy");
    const scale = b.div(g, b.dimSize(logits!, [0], logits!.dtype));
    const dLogits = when(needs[0], () => {
      const mass = b.reduceSum(targets!, [1], true);
      return b.mul(b.sub(b.mul(b.exp(logProb!), mass), targets!), scale);
    });
    return [dLogits, when(needs[1], () => b.mul(b.neg(logProb!), scale))];
  },
  // loss = mean(softplus(x) − x·t):  dx = (σ(x) − t)·g/n,  dt = −x·g/n
  bceWithLogits: ({ b, x: [x, t], dy: [g], needs }) => {
    const scale = b.div(
      g!,
      b.dimSize(
        x!,
        x!.shape.map((_, i) => i),
        x!.dtype,
      ),
    );
    return [
      when(needs[0], () => b.mul(b.sub(b.sigmoid(x!), t!), scale)),
      when(needs[1], () => b.mul(b.neg(x!), scale)),
    ];
  },

  loop: noRule(
    "gradients through a Loop are not implemented (differentiate inside the body, as compileTrainLoop does)",
  ),
};
