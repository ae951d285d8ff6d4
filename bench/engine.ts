/**
 * `incubator bench engine`: the same ViT trained (forward + backward + AdamW, fp32) by our ONNX
 * Runtime engine and by PyTorch, side by side, on this machine.
 *
 * Each measurement runs in its own child process so peak RSS is per configuration; the CLI
 * alternates the two sides in pairs (bench/pairs.ts). An engine `EngineVariant` (lowering and
 * session switches) can be compared against another the same way. PyTorch is
 * Debian's python3-torch with the OpenMP OpenBLAS (bench/torch/vit_train_bench.py). A large
 * fp32 MatMul in ONNX Runtime gives the machine's practical peak, against which each model's
 * achieved GFLOP/s is reported.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { GraphBuilder } from "../src/engine/ir/builder.ts";
import { dropMaskShape, dropPathMasks, vitClassifierSpec } from "../src/engine/models/classifier.ts";
import {
  mlpHidden,
  type NormFold,
  numTokens,
  VIT_DEFAULTS,
  type VitConfig,
  vitPreset,
} from "../src/engine/models/vit.ts";
import { toOnnxModel } from "../src/engine/onnx/serialize.ts";
import { Rng } from "../src/engine/rng.ts";
import { defaultMallocEnv, trainingEnv } from "../src/engine/runtime/malloc-tuning.ts";
import { EngineSession } from "../src/engine/runtime/session.ts";
import { f32 } from "../src/engine/runtime/tensor.ts";
import { type Batch, compileTrainer, Trainer } from "../src/engine/train/trainer.ts";

/**
 * The scaling-table models (issue 14): how cost grows with width (small → base) and depth
 * (deit-t → deit-t-48). `vit-small-16` / `vit-base-16` are the real presets at 224 px (196 + 1
 * tokens), batch 8. The `-32px` twins keep their width, depth and heads but take 32 px inputs with
 * patch 4 (64 + 1 tokens) for when 224 px does not fit the time: patch 16 at 32 px would leave 4
 * patches, a model that is nearly all MLP on 5 tokens, while patch 4 keeps attention a real share
 * of the step, as at 224 px. `deit-t-48` is deit-t (width 192, 3 heads) four times as deep.
 */
const scaling = (preset: string, overrides: Partial<VitConfig>, batch: number) => ({
  cfg: vitPreset(preset, { numClasses: 10, ...overrides }),
  batch,
});

export const BENCH_MODELS: Record<string, { cfg: VitConfig; batch: number }> = {
  tiny: {
    cfg: { ...VIT_DEFAULTS, imageSize: 16, patchSize: 4, width: 64, depth: 4, heads: 4, numClasses: 10 },
    batch: 64,
  },
  "deit-t": {
    cfg: { ...VIT_DEFAULTS, imageSize: 32, patchSize: 4, width: 192, depth: 12, heads: 3, numClasses: 10 },
    batch: 32,
  },
  "vit-small-16": scaling("vit-small-16", {}, 8),
  "vit-base-16": scaling("vit-base-16", {}, 8),
  "vit-small-16-32px": scaling("vit-small-16", { imageSize: 32, patchSize: 4 }, 8),
  "vit-base-16-32px": scaling("vit-base-16", { imageSize: 32, patchSize: 4 }, 8),
  "deit-t-48": scaling("deit-t-48", {}, 16),
};

/** The models of the scaling table (bench/RESULTS.md "Scaling table"). */
export const SCALING_MODELS = ["vit-small-16", "vit-base-16", "deit-t-48"] as const;

/** The PyTorch script's model arguments for a bench model (one place: BENCH_MODELS). */
export function torchConfig(model: string) {
  const { cfg, batch } = BENCH_MODELS[model]!;
  return {
    img: cfg.imageSize,
    patch: cfg.patchSize,
    chans: cfg.channels,
    classes: cfg.numClasses,
    dim: cfg.width,
    depth: cfg.depth,
    heads: cfg.heads,
    mlp_ratio: cfg.mlpRatio,
    batch,
  };
}

const TORCH_SCRIPT = resolve(import.meta.dirname, "torch/vit_train_bench.py");
const TORCH_PYTHON = "/usr/bin/python3";
const OPENBLAS_OPENMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp";

/** FLOPs of one training step (forward + backward ≈ 3 × forward), counting multiply-adds as 2. */
export function trainStepFlops(cfg: VitConfig, batch: number): number {
  const t = numTokens(cfg);
  const d = cfg.width;
  const h = mlpHidden(cfg);
  const patchIn = cfg.channels * cfg.patchSize ** 2;
  const perBlockLinear = 2 * t * (3 * d * d + d * d + 2 * d * h); // qkv, proj, fc1, fc2
  const perBlockAttn = 2 * 2 * t * t * d; // q·kᵀ and attn·v over all heads
  const forward =
    batch *
    (2 * (t - 1) * patchIn * d + cfg.depth * (perBlockLinear + perBlockAttn) + 2 * d * cfg.numClasses);
  return 3 * forward;
}

/**
 * Engine switches that change speed or memory but not the function computed: what `--compare`
 * toggles between the two sides of a pair. Every key is optional; absent means the engine default.
 */
export interface EngineVariant {
  /** com.microsoft fused kernels in float32 lowerings (Gelu, FusedMatMul) */
  contribOps?: boolean;
  /** skipLayerNorm as com.microsoft SkipLayerNormalization (default off: Add + LayerNormalization) */
  skipLayerNorm?: boolean;
  /** each block's second residual add + the next block's norm1 as one skipLayerNorm (ForwardOptions) */
  residualNorm?: boolean;
  /**
   * LayerNorm affines folded into the linear layers reading them: true "always", false "never";
   * absent, the engine's default "auto" (ForwardOptions.foldNormAffine)
   */
  foldNorm?: boolean;
  /** attention one head at a time, no head transposes (ForwardOptions.attentionPerHead) */
  perHead?: boolean;
  /** GELU's backward in nine elementwise passes (else ten; the same bits) */
  geluGrad?: boolean;
  /** ORT CPU memory arena */
  memArena?: boolean;
  /** ORT memory-pattern planner */
  memPattern?: boolean;
  /** idle ORT intra-op threads spin (default) or sleep */
  spinning?: boolean;
  /**
   * The process runs with glibc.malloc.hugetlb=1, as training jobs do (default), or with glibc's
   * default (false); the PyTorch side gets the same as our --base side.
   */
  hugePages?: boolean;
  /** ORT graph optimisation level */
  optLevel?: "disabled" | "basic" | "extended" | "all";
}

export const BOOLEAN_KEYS = [
  "contribOps",
  "hugePages",
  "skipLayerNorm",
  "residualNorm",
  "foldNorm",
  "perHead",
  "geluGrad",
  "memArena",
  "memPattern",
  "spinning",
] as const;
export const OPT_LEVELS = ["disabled", "basic", "extended", "all"] as const;

/** The model option a `foldNorm` variant value stands for (absent: the engine's default). */
export function foldMode(foldNorm: boolean | undefined): NormFold | undefined {
  return foldNorm === undefined ? undefined : foldNorm ? "always" : "never";
}

/** Parses "key=value,key=value" (e.g. "memArena=false,contribOps=true"); "" is the default engine. */
export function parseVariant(text: string, flag: string): EngineVariant {
  const variant: EngineVariant = {};
  const keys = [...BOOLEAN_KEYS, "optLevel"].join(", ");
  for (const part of text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [key, value, ...rest] = part.split("=");
    if (!key || value === undefined || rest.length)
      throw new Error(`${flag}: "${part}" is not key=value (keys: ${keys})`);
    if ((BOOLEAN_KEYS as readonly string[]).includes(key)) {
      if (value !== "true" && value !== "false")
        throw new Error(`${flag}: ${key} must be true or false, got "${value}"`);
      variant[key as (typeof BOOLEAN_KEYS)[number]] = value === "true";
    } else if (key === "optLevel") {
      if (!(OPT_LEVELS as readonly string[]).includes(value))
        throw new Error(`${flag}: optLevel must be one of ${OPT_LEVELS.join(", ")}, got "${value}"`);
      variant.optLevel = value as EngineVariant["optLevel"];
    } else throw new Error(`${flag}: unknown key "${key}" (keys: ${keys})`);
  }
  return variant;
}

export const formatVariant = (v: EngineVariant) =>
  Object.entries(v)
    .map(([k, x]) => `${k}=${x}`)
    .join(",") || "default";

export interface EngineRun {
  model: string;
  steps_per_s: number;
  step_ms_median: number;
  peak_rss_mb: number;
  /** forward + autodiff + optimizer IR and ONNX serialisation of the step graph(s), seconds */
  graph_build_s: number;
  /** ORT session creation (its graph optimisation included), seconds */
  session_create_s: number;
  loop_steps?: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export interface TimingOptions {
  threads: number;
  warmup: number;
  steps: number;
  repeats: number;
}

export interface EngineChildOptions extends TimingOptions {
  /** steps per run() in Loop mode; 0 or 1: one step per run() */
  loop: number;
  variant?: EngineVariant;
}

/** Time our engine in this process (called in a child by runEngineBench). */
export async function measureEngine(model: string, opts: EngineChildOptions): Promise<EngineRun> {
  const variant = opts.variant ?? {};
  const { cfg, batch } = BENCH_MODELS[model]!;
  const spec = vitClassifierSpec(cfg, {
    batch,
    optimizer: { kind: "adamw", weightDecay: 0.05 },
    labelSmoothing: 0.1,
    fuseResidualNorm: variant.residualNorm,
    foldNormAffine: foldMode(variant.foldNorm),
    attentionPerHead: variant.perHead,
  });
  // Uncached on purpose: this is the cost a cache miss pays (and PyTorch's eager mode does not).
  let started = performance.now();
  const artifacts = compileTrainer(spec, {
    eval: false,
    loopSteps: opts.loop > 1 ? [opts.loop] : [],
    contribOps: variant.contribOps,
    fusedSkipLayerNorm: variant.skipLayerNorm,
    compactGeluGrad: variant.geluGrad,
  });
  const graphBuildS = (performance.now() - started) / 1000;
  started = performance.now();
  const trainer = await Trainer.create(artifacts, {
    intraOpNumThreads: opts.threads,
    seed: 0,
    memArena: variant.memArena,
    memPattern: variant.memPattern,
    spinning: variant.spinning,
    graphOptimizationLevel: variant.optLevel,
  });
  const sessionCreateS = (performance.now() - started) / 1000;
  const rng = new Rng(1);
  const makeBatch = (): Batch => {
    const images = new Float32Array(batch * cfg.channels * cfg.imageSize ** 2);
    for (let i = 0; i < images.length; i++) images[i] = rng.normal();
    const labels = new BigInt64Array(batch);
    for (let i = 0; i < batch; i++) labels[i] = BigInt(rng.int(cfg.numClasses));
    const out: Batch = {
      images: f32([batch, cfg.channels, cfg.imageSize, cfg.imageSize], images),
      labels: { dtype: "int64", shape: [batch], data: labels },
    };
    if (cfg.dropPathRate > 0) {
      out.drop_mask = f32(
        dropMaskShape(cfg.depth, batch),
        dropPathMasks(rng, cfg.dropPathRate, cfg.depth, batch),
      );
    }
    return out;
  };
  const batches = Array.from({ length: Math.max(opts.loop, 1) }, makeBatch);
  const lrs = batches.map(() => 1e-4);
  const once = async () => {
    if (opts.loop > 1) await trainer.trainSteps(batches, lrs);
    else await trainer.trainStep(batches[0]!, 1e-4);
  };
  const perCall = Math.max(opts.loop, 1);
  for (let i = 0; i < Math.ceil(opts.warmup / perCall); i++) await once();
  const stepMs: number[] = [];
  for (let r = 0; r < opts.repeats; r++) {
    const calls = Math.max(1, Math.round(opts.steps / perCall));
    const start = performance.now();
    for (let i = 0; i < calls; i++) await once();
    stepMs.push((performance.now() - start) / (calls * perCall));
  }
  await trainer.release();
  const ms = median(stepMs);
  return {
    model,
    steps_per_s: 1000 / ms,
    step_ms_median: ms,
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
    graph_build_s: graphBuildS,
    session_create_s: sessionCreateS,
    ...(opts.loop > 1 ? { loop_steps: opts.loop } : {}),
  };
}

/** GFLOP/s of one n×n fp32 MatMul in ONNX Runtime: the practical peak of this machine. */
export async function measureMatmulPeak(threads: number, n = 2048, repeats = 5): Promise<number> {
  const b = new GraphBuilder("matmul_peak");
  b.output("c", b.matmul(b.input("a", "float32", [n, n]), b.input("b", "float32", [n, n])));
  const session = await EngineSession.create(toOnnxModel(b.graph), { intraOpNumThreads: threads });
  const rng = new Rng(2);
  const data = new Float32Array(n * n).map(() => rng.uniform() - 0.5);
  const feeds = { a: f32([n, n], data), b: f32([n, n], data) };
  await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await session.run(feeds);
    times.push(performance.now() - start);
  }
  await session.release();
  return (2 * n ** 3) / (median(times) / 1000) / 1e9;
}

export interface TorchRun {
  model: string;
  torch_steps_per_s: number;
  torch_step_ms_median: number;
  torch_peak_rss_mb: number;
  torch_version: string;
}

export function torchAvailable(): string | null {
  if (!existsSync(TORCH_PYTHON)) return `${TORCH_PYTHON} not found`;
  const probe = spawnSync(TORCH_PYTHON, ["-c", "import torch"], { encoding: "utf8" });
  if (probe.status !== 0)
    return "python3-torch is not installed (apt-get install -y python3-torch libopenblas0-openmp)";
  return null;
}

/**
 * `spinning: false` makes OpenMP's idle threads sleep (OMP_WAIT_POLICY=PASSIVE), as --no-spin does
 * for ORT; `hugePages` is glibc's setting for the process, as for ours (EngineVariant.hugePages).
 */
export function measureTorch(
  model: string,
  opts: TimingOptions & { spinning?: boolean; hugePages?: boolean },
) {
  const env = opts.hugePages === false ? defaultMallocEnv() : trainingEnv();
  if (existsSync(OPENBLAS_OPENMP))
    env.LD_LIBRARY_PATH = [OPENBLAS_OPENMP, env.LD_LIBRARY_PATH].filter(Boolean).join(":");
  env.OMP_NUM_THREADS = String(opts.threads);
  if (opts.spinning === false) env.OMP_WAIT_POLICY = "PASSIVE";
  // These machines pin OpenBLAS to an older core type (OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE) for
  // safety; that slows a current OpenBLAS, so the PyTorch baseline runs without them (benchmark only).
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const result = spawnSync(
    TORCH_PYTHON,
    [
      TORCH_SCRIPT,
      "--model",
      model,
      "--config",
      JSON.stringify(torchConfig(model)),
      "--threads",
      String(opts.threads),
      "--warmup",
      String(opts.warmup),
      "--steps",
      String(opts.steps),
      "--repeats",
      String(opts.repeats),
    ],
    { encoding: "utf8", env },
  );
  if (result.status !== 0) throw new Error(`PyTorch benchmark failed: ${result.stderr.trim()}`);
  const line = result.stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .at(-1);
  if (!line) throw new Error(`PyTorch benchmark printed no result: ${result.stdout}`);
  return JSON.parse(line) as TorchRun;
}
