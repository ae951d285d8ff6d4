/**
 * One ONNX Runtime InferenceSession per compiled graph, created once and reused every step.
 */
import * as ort from "onnxruntime-node";
import { assertProviderAvailable, type ExecutionProvider, explainProviderFailure } from "./providers.ts";
import { fromOrt, type HostTensor, toOrt } from "./tensor.ts";

export interface SessionOptions {
  provider?: ExecutionProvider;
  /** Threads inside one op (ORT's intra-op pool); default: ORT's choice (all cores). */
  intraOpNumThreads?: number;
  /** ORT graph optimisation level; "all" fuses e.g. MatMul+Add and LayerNorm patterns. */
  graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
  /** ORT log severity (0 verbose … 4 fatal); default 3 (errors only). */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /**
   * ORT's CPU memory arena (default on): buffers are carved from chunks that grow and are never
   * returned to the system, which trades peak RSS for allocation speed.
   */
  memArena?: boolean;
  /**
   * ORT's memory-pattern planner: after the first run, one pre-planned block for all of a run's
   * activations. Default OFF here: the first run has already grown the arena to hold them, and
   * the arena keeps those chunks, so the planned block comes on top and a train step's peak RSS
   * nearly doubled (deit-t: 1226 → 769 MB with it off; bench/RESULTS.md). With it off, every run
   * reuses the arena's chunks.
   */
  memPattern?: boolean;
  /**
   * Whether idle intra-op threads spin (ORT's default) or sleep. Spinning wins on a dedicated
   * machine; on one shared with other work spinning threads steal the cores the busy ones need.
   */
  spinning?: boolean;
}

export class EngineSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly provider: ExecutionProvider,
  ) {}

  static async create(model: Uint8Array, opts: SessionOptions = {}): Promise<EngineSession> {
    const provider = opts.provider ?? "cpu";
    assertProviderAvailable(provider);
    const options: ort.InferenceSession.SessionOptions = {
      executionProviders: [provider],
      graphOptimizationLevel: opts.graphOptimizationLevel ?? "all",
      logSeverityLevel: opts.logSeverityLevel ?? 3,
    };
    if (opts.intraOpNumThreads !== undefined) options.intraOpNumThreads = opts.intraOpNumThreads;
    if (opts.memArena !== undefined) options.enableCpuMemArena = opts.memArena;
    options.enableMemPattern = opts.memPattern ?? false;
    if (opts.spinning === false) options.extra = { "session.intra_op.allow_spinning": "0" };
    try {
      return new EngineSession(await ort.InferenceSession.create(model, options), provider);
    } catch (e) {
      throw explainProviderFailure(provider, e);
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Run with host tensors; fetches every output unless `fetch` names a subset. */
  async run(
    feeds: Record<string, HostTensor>,
    fetch?: readonly string[],
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = toOrt(t);
    const results = fetch ? await this.session.run(ortFeeds, [...fetch]) : await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(results)) out[name] = fromOrt(t);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
