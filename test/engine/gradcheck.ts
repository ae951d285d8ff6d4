/**
 * Finite-difference gradient checks through real ONNX Runtime sessions.
 *
 * The op under test produces some output y; the checked scalar is L = Σ y ⊙ w with fixed random
 * weights w (so every output element's Jacobian row matters). Analytic dL/dx comes from the
 * graph's backward pass; numeric dL/dx from central differences (L(x+h) − L(x−h)) / 2h, each
 * probe one more run of the same session.
 */
import { gradients } from "../../src/engine/autodiff/index.ts";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import { allocData, type DType, isFloatDType, type TensorData } from "../../src/engine/ir/dtype.ts";
import type { Value } from "../../src/engine/ir/graph.ts";
import { parseDim } from "../../src/engine/ir/shape.ts";
import { type SerializeOptions, toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { Rng } from "../../src/engine/rng.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import type { HostTensor } from "../../src/engine/runtime/tensor.ts";

export type Init = "normal" | "positive" | "awayFromZero" | ((rng: Rng, i: number) => number);

export interface CheckInput {
  name: string;
  shape: number[];
  dtype?: DType; // default: the check's dtype
  init?: Init;
  data?: TensorData;
  /** differentiate w.r.t. this input (default: float inputs) */
  wrt?: boolean;
  /** the shape declared in the graph, e.g. with a symbolic batch dim */
  graphShape?: (number | string)[];
}

export interface CheckOptions {
  dtype: "float32" | "float64";
  inputs: CheckInput[];
  build: (b: GraphBuilder, xs: Value[]) => Value;
  eps?: number;
  rtol?: number;
  atol?: number;
  /** at most this many probed elements per input */
  probes?: number;
  seed?: number;
  /** run-time values of symbolic dims */
  symbols?: Record<string, number>;
  /** how the graph is lowered to ONNX (default: the engine's defaults) */
  lowering?: SerializeOptions;
}

export interface CheckResult {
  worst: { input: string; index: number; analytic: number; numeric: number; err: number } | undefined;
  probed: number;
  opsInForward: Set<string>;
}

/** Every op that appeared in a forward graph under check (for the coverage test). */
export const coveredOps = new Set<string>();

const DEFAULTS = {
  float64: { eps: 1e-6, rtol: 1e-6, atol: 1e-8 },
  float32: { eps: 1e-2, rtol: 2e-2, atol: 2e-3 },
};

function fill(rng: Rng, dtype: DType, n: number, init: Init): TensorData {
  const data = allocData(dtype, n);
  for (let i = 0; i < n; i++) {
    let v: number;
    if (typeof init === "function") v = init(rng, i);
    else if (init === "positive") v = 0.5 + 1.5 * rng.uniform();
    else if (init === "awayFromZero") v = (rng.uniform() < 0.5 ? -1 : 1) * (0.2 + rng.uniform());
    else v = rng.normal();
    if (data instanceof BigInt64Array) data[i] = BigInt(Math.round(v));
    else data[i] = v;
  }
  return data;
}

function resolveDim(d: number | string, symbols: Record<string, number>): number {
  if (typeof d === "number") return d;
  const { coef, syms } = parseDim(d);
  return syms.reduce((acc, s) => acc * (symbols[s] ?? Number.NaN), coef);
}

export async function gradCheck(opts: CheckOptions): Promise<CheckResult> {
  const { eps, rtol, atol } = { ...DEFAULTS[opts.dtype], ...opts };
  const rng = new Rng(opts.seed ?? 1234);
  const b = new GraphBuilder("gradcheck");
  const xs = opts.inputs.map((i) => b.input(i.name, i.dtype ?? opts.dtype, i.graphShape ?? i.shape));
  const y = opts.build(b, xs);
  const opsInForward = new Set(b.graph.nodes.map((n) => n.op));
  for (const op of opsInForward) coveredOps.add(op);

  const runtimeShape = y.shape.map((d) => resolveDim(d, opts.symbols ?? {}));
  const nOut = runtimeShape.reduce((a, c) => a * c, 1);
  const w = fill(rng, y.dtype, nOut, "normal");
  const loss = b.sumAll(b.mul(y, b.input("__w", y.dtype, y.shape)));
  const diffIdx = opts.inputs.map(
    (inp, i) => (inp.wrt ?? isFloatDType(xs[i]!.dtype)) && isFloatDType(xs[i]!.dtype),
  );
  const wrt = xs.filter((_, i) => diffIdx[i]);
  const grads = gradients(b, loss, wrt);
  b.output("loss", loss);
  grads.forEach((g, i) => {
    if (!g) throw new Error(`no gradient reached input ${wrt[i]}`);
    b.output(`grad_${wrt[i]!.name}`, g);
  });
  const session = await EngineSession.create(toOnnxModel(b.graph, opts.lowering));

  const feeds: Record<string, HostTensor> = {
    __w: { dtype: y.dtype, shape: runtimeShape, data: w } as HostTensor,
  };
  for (const inp of opts.inputs) {
    const dtype = inp.dtype ?? opts.dtype;
    const n = inp.shape.reduce((a, c) => a * c, 1);
    feeds[inp.name] = {
      dtype,
      shape: inp.shape,
      data: inp.data ?? fill(rng, dtype, n, inp.init ?? "normal"),
    } as HostTensor;
  }
  const analytic = await session.run(feeds);
  const lossAt = async () => Number((await session.run(feeds, ["loss"])).loss!.data[0]);

  let worst: CheckResult["worst"];
  let probed = 0;
  for (const [i, inp] of opts.inputs.entries()) {
    if (!diffIdx[i]) continue;
    const data = feeds[inp.name]!.data as Float32Array | Float64Array;
    const g = analytic[`grad_${inp.name}`]!.data as Float32Array | Float64Array;
    const maxProbes = opts.probes ?? 24;
    const stride = Math.max(1, Math.floor(data.length / maxProbes));
    for (let k = 0; k < data.length; k += stride) {
      const orig = data[k]!;
      data[k] = orig + eps;
      const up = await lossAt();
      data[k] = orig - eps;
      const down = await lossAt();
      data[k] = orig;
      const numeric = (up - down) / (2 * eps);
      const a = g[k]!;
      const err = Math.abs(numeric - a) / (atol + rtol * Math.max(Math.abs(numeric), Math.abs(a)));
      probed++;
      if (!worst || err > worst.err) worst = { input: inp.name, index: k, analytic: a, numeric, err };
    }
  }
  await session.release();
  return { worst, probed, opsInForward };
}
