/**
 * Trainer: holds the flat parameter and optimizer-state buffers in TypeScript and runs compiled
 * step graphs on ONNX Runtime sessions (each created once, reused every step).
 *
 * Everything a Trainer needs is in `TrainerArtifacts` — plain data (model bytes, parameter
 * specs, optimizer config) that can be posted to a worker thread (see runtime/trainer-thread.ts)
 * or cached on disk. `compileTrainer` makes them from a TrainSpec.
 */
import { allocData } from "../ir/dtype.ts";
import { type OptimizerConfig, stateSlots } from "../optim/types.ts";
import { Rng } from "../rng.ts";
import { EngineSession, type SessionOptions } from "../runtime/session.ts";
import type { HostTensor } from "../runtime/tensor.ts";
import {
  type CompiledModel,
  compileEval,
  compileTrainLoop,
  compileTrainStep,
  type LoweringOptions,
} from "./compile.ts";
import { type GraphCache, graphKey } from "./graph-cache.ts";
import { FlatLayout, type ParamSpec } from "./params.ts";
import { type InputSpec, NAMES, type TrainSpec } from "./spec.ts";

export interface TrainerArtifacts {
  params: ParamSpec[];
  optimizer: OptimizerConfig;
  inputs: InputSpec[];
  train: CompiledModel;
  eval?: CompiledModel;
  /** Loop-mode models, one per step count */
  loops: CompiledModel[];
}

export interface CompileTrainerOptions extends LoweringOptions {
  /** also compile Loop-mode models running this many steps per run() */
  loopSteps?: number[];
  /** compile the eval graph (default true) */
  eval?: boolean;
  /** read compiled graphs from / write them to this on-disk cache (keyed by the spec's content) */
  cache?: GraphCache;
}

export function compileTrainer(spec: TrainSpec, opts: CompileTrainerOptions = {}): TrainerArtifacts {
  const lowering: LoweringOptions = {
    contribOps: opts.contribOps,
    fusedSkipLayerNorm: opts.fusedSkipLayerNorm,
    compactGeluGrad: opts.compactGeluGrad,
  };
  const cache = opts.cache;
  const build = (kind: CompiledModel["kind"], steps: number, compile: () => CompiledModel) =>
    cache ? cache.getOrCompile(graphKey(spec, kind, steps, lowering), compile) : compile();
  return {
    params: spec.params,
    optimizer: spec.optimizer,
    inputs: spec.inputs,
    train: build("train", 1, () => compileTrainStep(spec, lowering)),
    eval: opts.eval === false ? undefined : build("eval", 0, () => compileEval(spec, lowering)),
    loops: (opts.loopSteps ?? []).map((n) => build("loop", n, () => compileTrainLoop(spec, n, lowering))),
  };
}

export type Batch = Record<string, HostTensor>;

export interface StepResult {
  step: number;
  loss: number;
  gradNorm: number;
  metrics: Record<string, number>;
}

export interface EvalResult {
  loss: number;
  metrics: Record<string, number>;
  outputs: Record<string, HostTensor>;
}

export interface TrainerOptions extends SessionOptions {
  /** seed for parameter init when `initial` does not cover a parameter */
  seed?: number;
  /** initial parameter values by name (others use their spec's init) */
  initial?: Map<string, Float32Array>;
}

/** Key of an optimizer-state tensor in exported state: "optimizer.<slot>.<param name>". */
export const optimizerKey = (slot: string, param: string) => `optimizer.${slot}.${param}`;
export const STEP_KEY = "optimizer.step";

export class Trainer {
  readonly layout: FlatLayout;
  readonly slots: string[];
  private params: Float32Array;
  private frozen: Float32Array;
  private state: Float32Array[];
  private completedSteps = 0;

  private constructor(
    readonly artifacts: TrainerArtifacts,
    private readonly trainSession: EngineSession,
    private readonly evalSession: EngineSession | undefined,
    private readonly loopSessions: Map<number, EngineSession>,
    opts: TrainerOptions,
  ) {
    this.layout = new FlatLayout(artifacts.params);
    this.slots = stateSlots(artifacts.optimizer);
    const buffers = this.layout.initialise(new Rng(opts.seed ?? 0));
    this.params = buffers.trainable;
    this.frozen = buffers.frozen;
    this.state = this.slots.map(() => new Float32Array(this.layout.trainableSize));
    if (opts.initial) this.loadParameters(opts.initial, { partial: true });
  }

  static async create(artifacts: TrainerArtifacts, opts: TrainerOptions = {}): Promise<Trainer> {
    const session = (m: CompiledModel) => EngineSession.create(m.model, opts);
    const train = await session(artifacts.train);
    const evalS = artifacts.eval ? await session(artifacts.eval) : undefined;
    const loops = new Map<number, EngineSession>();
    for (const m of artifacts.loops) loops.set(m.steps, await session(m));
    return new Trainer(artifacts, train, evalS, loops, opts);
  }

  /** Number of optimizer steps taken so far. */
  get step(): number {
    return this.completedSteps;
  }

  /** Step counts that run as one Loop-mode call. */
  get loopSizes(): number[] {
    return [...this.loopSessions.keys()];
  }

  private flatFeeds(): Batch {
    const feeds: Batch = { [NAMES.params]: f32([this.layout.trainableSize], this.params) };
    if (this.layout.frozenSize > 0) feeds[NAMES.frozen] = f32([this.layout.frozenSize], this.frozen);
    return feeds;
  }

  private stateFeeds(firstStep: number): Batch {
    const feeds: Batch = {
      [NAMES.step]: { dtype: "int64", shape: [], data: BigInt64Array.of(BigInt(firstStep)) },
    };
    this.slots.forEach((s, i) => {
      feeds[NAMES.state(s)] = f32([this.layout.trainableSize], this.state[i]!);
    });
    return feeds;
  }

  private absorb(out: Record<string, HostTensor>): void {
    this.params = out[NAMES.next(NAMES.params)]!.data as Float32Array;
    this.slots.forEach((s, i) => {
      this.state[i] = out[NAMES.next(NAMES.state(s))]!.data as Float32Array;
    });
  }

  private checkBatch(batch: Batch, leading: number[] = []): void {
    for (const spec of this.artifacts.inputs) {
      const t = batch[spec.name];
      if (!t) throw new Error(`batch is missing input "${spec.name}"`);
      const want = [...leading, ...spec.shape];
      if (t.dtype !== spec.dtype || t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
        throw new Error(
          `batch input "${spec.name}": expected ${spec.dtype}[${want}], got ${t.dtype}[${t.shape}]`,
        );
    }
  }

  /** One optimizer step with learning rate `lr`. */
  async trainStep(batch: Batch, lr: number): Promise<StepResult> {
    this.checkBatch(batch);
    const step = this.completedSteps + 1;
    const feeds = {
      ...this.flatFeeds(),
      ...this.stateFeeds(step),
      lr: f32([], Float32Array.of(lr)),
      ...batch,
    };
    const out = await this.trainSession.run(feeds);
    this.absorb(out);
    this.completedSteps = step;
    return {
      step,
      loss: out[NAMES.loss]!.data[0] as number,
      gradNorm: out[NAMES.gradNorm]!.data[0] as number,
      metrics: this.metricsAt(out, 0),
    };
  }

  /**
   * Several steps. When a Loop-mode model for `batches.length` steps was compiled, they run in
   * ONE session.run (batches stacked); otherwise step by step. Results are the same either way.
   */
  async trainSteps(batches: Batch[], lrs: number[]): Promise<StepResult[]> {
    if (batches.length !== lrs.length)
      throw new Error(`${batches.length} batches but ${lrs.length} learning rates`);
    const loop = this.loopSessions.get(batches.length);
    if (!loop) {
      const results: StepResult[] = [];
      for (const [i, batch] of batches.entries()) results.push(await this.trainStep(batch, lrs[i]!));
      return results;
    }
    for (const batch of batches) this.checkBatch(batch);
    const first = this.completedSteps + 1;
    const feeds: Batch = {
      ...this.flatFeeds(),
      ...this.stateFeeds(first),
      lr: f32([lrs.length], Float32Array.from(lrs)),
      ...stackBatches(batches, this.artifacts.inputs),
    };
    const out = await loop.run(feeds);
    this.absorb(out);
    this.completedSteps += batches.length;
    return batches.map((_, i) => ({
      step: first + i,
      loss: out[NAMES.loss]!.data[i] as number,
      gradNorm: out[NAMES.gradNorm]!.data[i] as number,
      metrics: this.metricsAt(out, i),
    }));
  }

  private metricsAt(out: Record<string, HostTensor>, i: number): Record<string, number> {
    const metrics: Record<string, number> = {};
    for (const [name, t] of Object.entries(out))
      if (name.startsWith("metric.")) metrics[name.slice("metric.".length)] = Number(t.data[i]);
    return metrics;
  }

  async evaluate(batch: Batch): Promise<EvalResult> {
    if (!this.evalSession) throw new Error("this trainer was compiled without an eval graph");
    const out = await this.evalSession.run({ ...this.flatFeeds(), ...batch });
    const outputs: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(out)) if (name.startsWith("output.")) outputs[name.slice(7)] = t;
    return { loss: Number(out[NAMES.loss]!.data[0]), metrics: this.metricsAt(out, 0), outputs };
  }

  /** Current parameter values by name (copies). */
  parameters(): Map<string, Float32Array> {
    const buffers = { trainable: this.params, frozen: this.frozen };
    return new Map(this.layout.slots.map((s) => [s.name, this.layout.view(buffers, s.name).slice()]));
  }

  /** Set parameters by name; unless `partial`, every parameter must be given. */
  loadParameters(values: Map<string, Float32Array>, opts: { partial?: boolean } = {}): void {
    const buffers = { trainable: this.params, frozen: this.frozen };
    for (const [name, data] of values) {
      const view = this.layout.view(buffers, name);
      if (data.length !== view.length)
        throw new Error(`parameter "${name}": ${data.length} values, expected ${view.length}`);
      view.set(data);
    }
    if (!opts.partial)
      for (const s of this.layout.slots)
        if (!values.has(s.name)) throw new Error(`parameter "${s.name}" missing`);
  }

  /**
   * The whole training state keyed by timm-style names: parameters under their own names,
   * optimizer slots as "optimizer.<slot>.<name>" (trainable parameters only), and
   * "optimizer.step" as a one-element array.
   */
  exportState(): Map<string, Float32Array> {
    const state = this.parameters();
    for (const [i, slot] of this.slots.entries())
      for (const s of this.layout.trainableSlots)
        state.set(optimizerKey(slot, s.name), this.state[i]!.slice(s.offset, s.offset + s.size));
    state.set(STEP_KEY, Float32Array.of(this.completedSteps));
    return state;
  }

  /** Shapes of every tensor exportState returns (for writing safetensors). */
  stateShapes(): Map<string, number[]> {
    const shapes = new Map<string, number[]>();
    for (const s of this.layout.slots) shapes.set(s.name, s.shape);
    for (const slot of this.slots)
      for (const s of this.layout.trainableSlots) shapes.set(optimizerKey(slot, s.name), s.shape);
    shapes.set(STEP_KEY, [1]);
    return shapes;
  }

  /** Restore what exportState produced (optimizer entries and step may be absent: fresh optimizer). */
  importState(state: Map<string, Float32Array>): void {
    const params = new Map<string, Float32Array>();
    for (const s of this.layout.slots) {
      const v = state.get(s.name);
      if (!v) throw new Error(`state has no parameter "${s.name}"`);
      params.set(s.name, v);
    }
    this.loadParameters(params);
    for (const [i, slot] of this.slots.entries()) {
      const buf = new Float32Array(this.layout.trainableSize);
      for (const s of this.layout.trainableSlots) {
        const v = state.get(optimizerKey(slot, s.name));
        if (v) {
          if (v.length !== s.size)
            throw new Error(`${optimizerKey(slot, s.name)}: ${v.length} values, expected ${s.size}`);
          buf.set(v, s.offset);
        }
      }
      this.state[i] = buf;
    }
    this.completedSteps = Math.round(state.get(STEP_KEY)?.[0] ?? 0);
  }

  async release(): Promise<void> {
    await this.trainSession.release();
    await this.evalSession?.release();
    for (const s of this.loopSessions.values()) await s.release();
  }
}

function f32(shape: number[], data: Float32Array): HostTensor<"float32"> {
  return { dtype: "float32", shape, data };
}

/** Stack per-step batches along a new leading axis, for Loop mode. */
export function stackBatches(batches: Batch[], inputs: InputSpec[]): Batch {
  const out: Batch = {};
  for (const spec of inputs) {
    const parts = batches.map((b) => b[spec.name]!);
    const n = parts[0]!.data.length;
    const data = allocData(spec.dtype, n * parts.length);
    for (const [i, p] of parts.entries()) (data as Float32Array).set(p.data as Float32Array, i * n);
    out[spec.name] = { dtype: spec.dtype, shape: [parts.length, ...parts[0]!.shape], data } as HostTensor;
  }
  return out;
}
