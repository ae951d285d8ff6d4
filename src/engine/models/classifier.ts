/**
 * A ViT image classifier as a training spec: what the train-step compiler needs (parameters,
 * batch inputs, forward → loss and metrics) for end-to-end training, plus the TypeScript side
 * of stochastic depth (per-sample masks drawn from the run's seeded generator).
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";
import type { OptimizerConfig } from "../optim/types.ts";
import type { Rng } from "../rng.ts";
import type { ParamSpec } from "../train/params.ts";
import type { ForwardContext, ForwardResult, InputSpec, TrainSpec } from "../train/spec.ts";
import {
  type BlockDropMasks,
  dropPathRates,
  type ForwardPlan,
  forwardPlan,
  type NormFold,
  type VitConfig,
  vitParamSpecs,
  vitPlan,
} from "./vit.ts";

export interface ClassifierOptions {
  batch: number;
  optimizer: OptimizerConfig;
  /** Label smoothing ε for hard labels (ignored with soft targets, which carry their own). */
  labelSmoothing?: number;
  /** Train on soft targets [B, classes] (Mixup/CutMix) instead of int64 labels. */
  softTargets?: boolean;
  /** Softmax cross-entropy (default) or DeiT-III's binary cross-entropy on (soft) targets. */
  loss?: "ce" | "bce";
  clipGradNorm?: number;
  /** Parameter specs (default: the whole ViT, all trainable); frozen ones have trainable: false. */
  params?: ParamSpec[];
  /** Which parameters each stage reads (default: the plain ViT); see incubation hybrids. */
  plan?: ForwardPlan;
  /** Stochastic-depth rate of the deepest block (default cfg.dropPathRate). */
  dropPathRate?: number;
  /** Recompute each block's activations in the backward pass (TrainSpec.recomputeActivations). */
  recomputeActivations?: boolean;
  /**
   * Fuse each block's second residual add with the next block's norm1 (ForwardOptions; default
   * false, always off with recomputeActivations). The same function either way; off by default
   * because it was measured with the fused SkipLayerNormalization lowering, which is slower on
   * CPU than Add + Add + LayerNormalization (bench/RESULTS.md, "Engine speed levers"); with
   * skipLayerNorm lowered as that pair (the default since), it saves no pass.
   */
  fuseResidualNorm?: boolean;
  /**
   * Fold LayerNorms' scale and shift into the linear layer reading them (ForwardOptions; default
   * "auto": where it saves passes, see NormFold). The same function (bench/RESULTS.md).
   */
  foldNormAffine?: NormFold;
  /** Attention one head at a time (ForwardOptions.attentionPerHead; default false). */
  attentionPerHead?: boolean;
}

export const INPUT = {
  images: "images",
  labels: "labels",
  targets: "targets",
  dropMask: "drop_mask",
} as const;

/** Accuracy of logits [B,K] against class ids [B] (int64), as a float scalar. */
export function accuracy(b: GraphBuilder, logits: Value, labels: Value): Value {
  return b.meanAll(b.cast(b.equal(b.argMax(logits, -1), labels), "float32"));
}

export function vitClassifierSpec(cfg: VitConfig, opts: ClassifierOptions): TrainSpec {
  const { batch } = opts;
  const images: InputSpec = {
    name: INPUT.images,
    dtype: "float32",
    shape: [batch, cfg.channels, cfg.imageSize, cfg.imageSize],
  };
  const labels: InputSpec = { name: INPUT.labels, dtype: "int64", shape: [batch] };
  const targets: InputSpec = { name: INPUT.targets, dtype: "float32", shape: [batch, cfg.numClasses] };
  const plan = opts.plan ?? vitPlan(cfg);
  const depth = plan.blocks.length;
  const useDropPath = (opts.dropPathRate ?? cfg.dropPathRate) > 0;
  const fuseResidualNorm = !opts.recomputeActivations && (opts.fuseResidualNorm ?? false);
  const foldNormAffine = opts.foldNormAffine ?? "auto";
  const attentionPerHead = opts.attentionPerHead ?? false;
  const inputs: InputSpec[] = [images, opts.softTargets ? targets : labels];
  if (useDropPath)
    inputs.push({ name: INPUT.dropMask, dtype: "float32", shape: dropMaskShape(depth, batch) });

  const forward = (ctx: ForwardContext): ForwardResult => {
    const { b } = ctx;
    let masks: BlockDropMasks[] | undefined;
    if (ctx.training && useDropPath) {
      const rows = b.split(
        b.reshape(ctx.input(INPUT.dropMask), [2 * depth, batch]),
        0,
        Array(2 * depth).fill(1),
      );
      masks = Array.from({ length: depth }, (_, i) => ({
        attn: b.reshape(rows[2 * i]!, [batch]),
        mlp: b.reshape(rows[2 * i + 1]!, [batch]),
      }));
    }
    const logits = forwardPlan(b, cfg, ctx.param, ctx.input(INPUT.images), plan, masks, {
      fuseResidualNorm,
      foldNormAffine,
      attentionPerHead,
    });
    if (ctx.training && opts.softTargets) {
      const soft = ctx.input(INPUT.targets);
      return {
        loss: opts.loss === "bce" ? b.bceWithLogits(logits, soft) : b.softCrossEntropy(logits, soft),
        metrics: { accuracy: accuracy(b, logits, b.argMax(soft, -1)) },
        outputs: { logits },
      };
    }
    const y = ctx.input(INPUT.labels);
    return {
      loss: b.softmaxCrossEntropy(logits, y, ctx.training ? (opts.labelSmoothing ?? 0) : 0),
      metrics: { accuracy: accuracy(b, logits, y) },
      outputs: { logits },
    };
  };

  return {
    params: opts.params ?? vitParamSpecs(cfg),
    inputs,
    evalInputs: [images, labels],
    forward,
    optimizer: opts.optimizer,
    ...(opts.clipGradNorm !== undefined ? { clipGradNorm: opts.clipGradNorm } : {}),
    ...(opts.recomputeActivations ? { recomputeActivations: true } : {}),
    // Everything `forward` reads besides params and inputs (the graph cache's key).
    graphKey: {
      model: "vit-classifier",
      cfg,
      plan,
      batch,
      useDropPath,
      fuseResidualNorm,
      foldNormAffine,
      attentionPerHead,
      softTargets: opts.softTargets ?? false,
      loss: opts.loss ?? "ce",
      labelSmoothing: opts.labelSmoothing ?? 0,
    },
  };
}

/**
 * Shape of the drop-path input: [depth, 2, B], block i's attention branch at [i, 0] and its MLP
 * branch at [i, 1]. timm calls DropPath once per residual branch, so the two branches of a block
 * drop independently (one shared mask per block would drop both together, a stronger and
 * differently correlated regulariser than the method's).
 */
export const dropMaskShape = (depth: number, batch: number): number[] => [depth, 2, batch];

/**
 * Per-sample stochastic-depth masks [depth, 2, B] (see `dropMaskShape`): 0 (branch dropped) or
 * 1/keep, with block i's drop rate from timm's linspace over `depth` (a hybrid's own depth in
 * modular training, with the frozen meta blocks included). Drawn from `rng`, so the run's seed
 * fixes them.
 */
export function dropPathMasks(rng: Rng, rate: number, depth: number, batch: number): Float32Array {
  const rates = dropPathRates(rate, depth);
  const out = new Float32Array(depth * 2 * batch);
  rates.forEach((r, i) => {
    const keep = 1 - r;
    for (let j = 0; j < 2 * batch; j++) {
      out[i * 2 * batch + j] = keep >= 1 || rng.uniform() < keep ? 1 / keep : 0;
    }
  });
  return out;
}
