/**
 * Compiles a TrainSpec into ONNX models:
 *
 *  - train step:  (params, frozen, state.*, step, lr, batch…) → (loss, metric.*, grad_norm,
 *                 params.next, state.*.next) — forward, backward and optimizer in one graph;
 *  - train loop:  the same step run N times by an ONNX Loop: params and state are loop-carried,
 *                 batch inputs are stacked on a new leading axis [N, …], lr is [N], `step` is
 *                 the first step's number; losses and metrics come back as [N];
 *  - eval:        (params, frozen, batch…) → (loss, metric.*, output.*), forward only.
 */
import { gradients } from "../autodiff/gradients.ts";
import { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";
import { type SerializeOptions, toOnnxModel } from "../onnx/serialize.ts";
import { clipByGlobalNorm, globalNorm } from "../optim/clip.ts";
import { applyOptimizer } from "../optim/index.ts";
import { stateSlots } from "../optim/types.ts";
import { FlatLayout } from "./params.ts";
import { type ForwardContext, type InputSpec, NAMES, RESERVED_INPUTS, type TrainSpec } from "./spec.ts";

export interface CompiledModel {
  kind: "train" | "loop" | "eval";
  model: Uint8Array;
  inputs: InputSpec[];
  outputs: string[];
  /** number of IR nodes (the loop body's included) */
  irNodes: number;
  /** optimizer steps per run (1 for train, N for loop) */
  steps: number;
}

interface StepValues {
  params: Value;
  frozen: Value | undefined;
  state: Value[];
  step: Value;
  lr: Value;
  batch: Map<string, Value>;
}

interface StepOutputs {
  loss: Value;
  metrics: [string, Value][];
  gradNorm: Value;
  params: Value;
  state: Value[];
}

function checkInputs(inputs: InputSpec[]): void {
  const seen = new Set<string>();
  for (const i of inputs) {
    if (RESERVED_INPUTS.has(i.name) || i.name.startsWith("state."))
      throw new Error(`batch input name "${i.name}" is reserved`);
    if (seen.has(i.name)) throw new Error(`duplicate batch input "${i.name}"`);
    seen.add(i.name);
  }
}

/**
 * A ForwardContext whose parameters are cut out of the flat buffers: on the first read from a
 * group, one Split cuts that whole buffer into its parameters (one kernel instead of one Slice
 * per parameter).
 */
function forwardContext(
  b: GraphBuilder,
  layout: FlatLayout,
  flat: { params: Value; frozen: Value | undefined },
  batch: Map<string, Value>,
  training: boolean,
): { ctx: ForwardContext; used: Map<string, Value> } {
  const used = new Map<string, Value>();
  const pieces = new Map<string, Map<string, Value>>();
  const pieceOf = (group: "trainable" | "frozen", name: string): Value => {
    let byName = pieces.get(group);
    if (!byName) {
      const slots = group === "trainable" ? layout.trainableSlots : layout.frozenSlots;
      const buffer = group === "trainable" ? flat.params : flat.frozen!;
      const outs =
        slots.length === 1
          ? [buffer]
          : b.split(
              buffer,
              0,
              slots.map((s) => s.size),
            );
      byName = new Map(slots.map((s, i) => [s.name, outs[i]!]));
      pieces.set(group, byName);
    }
    return byName.get(name)!;
  };
  const ctx: ForwardContext = {
    b,
    training,
    param(name) {
      let v = used.get(name);
      if (!v) {
        const s = layout.slot(name);
        v = b.reshape(pieceOf(s.group, name), s.shape);
        if (v.kind !== "node") v = b.identity(v); // a lone parameter: keep the buffer's own name
        v.name = name;
        used.set(name, v);
      }
      return v;
    },
    input(name) {
      const v = batch.get(name);
      if (!v) throw new Error(`unknown batch input "${name}" (declared: ${[...batch.keys()].join(", ")})`);
      return v;
    },
  };
  return { ctx, used };
}

/** Forward + backward + optimizer for one step, built into `b` from the given values. */
function buildStep(b: GraphBuilder, spec: TrainSpec, layout: FlatLayout, v: StepValues): StepOutputs {
  const { ctx, used } = forwardContext(b, layout, v, v.batch, true);
  const result = spec.forward(ctx);
  if (result.loss.rank !== 0 || result.loss.dtype !== "float32")
    throw new Error(`forward must return a float32 scalar loss, got ${result.loss}`);

  const trainable = layout.trainableSlots;
  const wrt = trainable.map((s) => used.get(s.name)).filter((x): x is Value => x !== undefined);
  const grads = gradients(b, result.loss, wrt, { recompute: spec.recomputeActivations ?? false });
  const gradOf = new Map(wrt.map((w, i) => [w.name!, grads[i]]));
  // One flat gradient in the layout's order; parameters the loss does not reach get zeros.
  const pieces = trainable.map((s) => {
    const g = gradOf.get(s.name);
    return g ? b.reshape(g, [s.size]) : b.zeros([s.size]);
  });
  let flatGrad = b.concat(pieces, 0);
  let gradNorm: Value;
  if (spec.clipGradNorm !== undefined)
    ({ grad: flatGrad, norm: gradNorm } = clipByGlobalNorm(b, flatGrad, spec.clipGradNorm));
  else gradNorm = globalNorm(b, flatGrad);

  const update = applyOptimizer(spec.optimizer, {
    b,
    param: v.params,
    grad: flatGrad,
    state: v.state,
    step: v.step,
    lr: v.lr,
    decaySize: layout.decaySize,
    segmentSizes: trainable.map((s) => s.size),
  });
  return {
    loss: result.loss,
    metrics: Object.entries(result.metrics ?? {}),
    gradNorm,
    params: update.param,
    state: update.state,
  };
}

function declareFlat(b: GraphBuilder, layout: FlatLayout) {
  if (layout.trainableSize === 0) throw new Error("no trainable parameters");
  const params = b.input(NAMES.params, "float32", [layout.trainableSize]);
  const frozen = layout.frozenSize > 0 ? b.input(NAMES.frozen, "float32", [layout.frozenSize]) : undefined;
  return { params, frozen };
}

/** How a compiled graph is lowered to ONNX (the same function either way; speed differs). */
export type LoweringOptions = Pick<SerializeOptions, "contribOps" | "fusedSkipLayerNorm" | "compactGeluGrad">;

function finish(
  kind: CompiledModel["kind"],
  b: GraphBuilder,
  steps: number,
  lowering: LoweringOptions = {},
): CompiledModel {
  const g = b.graph;
  let irNodes = 0;
  const count = (graph: typeof g) => {
    for (const n of graph.nodes) {
      irNodes++;
      if (n.op === "loop") count((n.attrs as { body: typeof g }).body);
    }
  };
  count(g);
  return {
    kind,
    model: toOnnxModel(g, lowering),
    inputs: g.inputs.map((v) => ({ name: v.name!, dtype: v.dtype, shape: [...v.shape] })),
    outputs: g.outputs.map((o) => o.name),
    irNodes,
    steps,
  };
}

/** One training step as one ONNX model. */
export function compileTrainStep(spec: TrainSpec, lowering: LoweringOptions = {}): CompiledModel {
  return finish("train", buildTrainStepGraph(spec), 1, lowering);
}

/** The train-step graph itself (for inspection with dumpGraph). */
export function buildTrainStepGraph(spec: TrainSpec): GraphBuilder {
  checkInputs(spec.inputs);
  const layout = new FlatLayout(spec.params);
  const b = new GraphBuilder("train_step");
  const { params, frozen } = declareFlat(b, layout);
  const slots = stateSlots(spec.optimizer);
  const state = slots.map((s) => b.input(NAMES.state(s), "float32", [layout.trainableSize]));
  const step = b.input(NAMES.step, "int64", []);
  const lr = b.input(NAMES.lr, "float32", []);
  const batch = new Map(spec.inputs.map((i) => [i.name, b.input(i.name, i.dtype, i.shape)]));
  const out = buildStep(b, spec, layout, { params, frozen, state, step, lr, batch });
  b.output(NAMES.loss, out.loss);
  for (const [k, m] of out.metrics) b.output(NAMES.metric(k), m);
  b.output(NAMES.gradNorm, out.gradNorm);
  b.output(NAMES.next(NAMES.params), out.params);
  for (const [i, s] of slots.entries()) b.output(NAMES.next(NAMES.state(s)), out.state[i]!);
  return b;
}

/** `steps` training steps in one ONNX model via Loop (batch inputs stacked as [steps, …]). */
export function compileTrainLoop(
  spec: TrainSpec,
  steps: number,
  lowering: LoweringOptions = {},
): CompiledModel {
  checkInputs(spec.inputs);
  const layout = new FlatLayout(spec.params);
  const b = new GraphBuilder("train_loop");
  const { params, frozen } = declareFlat(b, layout);
  const slots = stateSlots(spec.optimizer);
  const state = slots.map((s) => b.input(NAMES.state(s), "float32", [layout.trainableSize]));
  const firstStep = b.input(NAMES.step, "int64", []);
  const lrs = b.input(NAMES.lr, "float32", [steps]);
  const stacked = spec.inputs.map((i) => b.input(i.name, i.dtype, [steps, ...i.shape]));

  let metricNames: string[] = [];
  const result = b.loop(steps, [params, ...state], (bb, iter, carried) => {
    const [p, ...st] = carried as [Value, ...Value[]];
    const batch = new Map(spec.inputs.map((spec_, i) => [spec_.name, bb.gather(stacked[i]!, iter, 0)]));
    const out = buildStep(bb, spec, layout, {
      params: p,
      frozen,
      state: st,
      step: bb.add(firstStep, iter),
      lr: bb.gather(lrs, iter, 0),
      batch,
    });
    metricNames = out.metrics.map(([k]) => k);
    return {
      carried: [out.params, ...out.state],
      scans: [out.loss, out.gradNorm, ...out.metrics.map(([, m]) => m)],
    };
  });
  const [nextParams, ...nextState] = result.carried;
  const [losses, gradNorms, ...metrics] = result.scans;
  b.output(NAMES.loss, losses!);
  for (const [i, k] of metricNames.entries()) b.output(NAMES.metric(k), metrics[i]!);
  b.output(NAMES.gradNorm, gradNorms!);
  b.output(NAMES.next(NAMES.params), nextParams!);
  for (const [i, s] of slots.entries()) b.output(NAMES.next(NAMES.state(s)), nextState[i]!);
  return finish("loop", b, steps, lowering);
}

/** Forward-only evaluation graph. */
export function compileEval(spec: TrainSpec, lowering: LoweringOptions = {}): CompiledModel {
  return finish("eval", buildEvalGraph(spec), 0, lowering);
}

export function buildEvalGraph(spec: TrainSpec): GraphBuilder {
  const inputs = spec.evalInputs ?? spec.inputs;
  checkInputs(inputs);
  const layout = new FlatLayout(spec.params);
  const b = new GraphBuilder("eval");
  const flat = declareFlat(b, layout);
  const batch = new Map(inputs.map((i) => [i.name, b.input(i.name, i.dtype, i.shape)]));
  const { ctx } = forwardContext(b, layout, flat, batch, false);
  const result = spec.forward(ctx);
  b.output(NAMES.loss, result.loss);
  for (const [k, m] of Object.entries(result.metrics ?? {})) b.output(NAMES.metric(k), m);
  for (const [k, o] of Object.entries(result.outputs ?? {})) b.output(NAMES.output(k), o);
  return b;
}
