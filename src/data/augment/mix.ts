/**
 * Mixup / CutMix with soft targets and label smoothing, timm `Mixup` semantics in "batch" mode:
 * one λ per batch; with probability `prob` the batch is mixed, by CutMix with probability
 * `switchProb` when both are enabled (else Mixup); λ ~ Beta(α, α) of the chosen method; every
 * image i is mixed with image B−1−i (the batch reversed); CutMix's λ is corrected to the box's
 * actual (clipped) area. Targets: smoothed one-hot of y_i·λ + of y_{B−1−i}·(1−λ), each row sums to 1.
 */
import type { Rng } from "../../engine/rng.ts";
import { sampleBeta } from "./beta.ts";

export interface MixOptions {
  /** Mixup α (0 disables; DeiT 0.8). */
  mixupAlpha: number;
  /** CutMix α (0 disables; DeiT 1.0). */
  cutmixAlpha: number;
  /** Probability that a batch is mixed at all (timm `mix_prob`, default 1). */
  prob: number;
  /** Probability of CutMix rather than Mixup when both are enabled (timm default 0.5). */
  switchProb: number;
  /** Label smoothing ε (DeiT 0.1): on-value 1 − ε + ε/K, off-value ε/K. */
  labelSmoothing: number;
  numClasses: number;
}

export interface MixResult {
  /** Soft targets [B, numClasses]. */
  targets: Float32Array;
  /** The λ used (after CutMix area correction); 1 when the batch was not mixed. */
  lambda: number;
  method: "none" | "mixup" | "cutmix";
  /** The CutMix box [y0, y1) × [x0, x1), when CutMix was used. */
  box?: { y0: number; y1: number; x0: number; x1: number };
}

/**
 * timm `rand_bbox`: a box of side int(√(1−λ)·size) centred at (cy, cx) (drawn uniformly over the
 * pixels), clipped to the image.
 */
export function cutmixBox(height: number, width: number, lambda: number, cy: number, cx: number) {
  const ratio = Math.sqrt(1 - lambda);
  const cutH = Math.floor(height * ratio);
  const cutW = Math.floor(width * ratio);
  const clip = (v: number, hi: number) => Math.min(hi, Math.max(0, v));
  return {
    y0: clip(cy - Math.floor(cutH / 2), height),
    y1: clip(cy + Math.floor(cutH / 2), height),
    x0: clip(cx - Math.floor(cutW / 2), width),
    x1: clip(cx + Math.floor(cutW / 2), width),
  };
}

/** Smoothed one-hot targets mixed with the reversed batch's labels. */
export function mixTargets(
  labels: ArrayLike<number>,
  numClasses: number,
  lambda: number,
  smoothing: number,
): Float32Array {
  const B = labels.length;
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const out = new Float32Array(B * numClasses);
  for (let i = 0; i < B; i++) {
    const row = out.subarray(i * numClasses, (i + 1) * numClasses);
    row.fill(off);
    row[labels[i]!]! += (on - off) * lambda;
    row[labels[B - 1 - i]!]! += (on - off) * (1 - lambda);
  }
  return out;
}

/**
 * Mixes `images` ([B, C, H, W], normalised) in place and returns the soft targets.
 * Without mixing (prob miss, or both α = 0) the targets are just the smoothed one-hot labels.
 */
export function mixBatch(
  images: Float32Array,
  labels: ArrayLike<number>,
  shape: { batch: number; channels: number; height: number; width: number },
  rng: Rng,
  opts: MixOptions,
): MixResult {
  const enabled = opts.mixupAlpha > 0 || opts.cutmixAlpha > 0;
  let lambda = 1;
  let useCutmix = false;
  if (enabled && rng.uniform() < opts.prob) {
    if (opts.mixupAlpha > 0 && opts.cutmixAlpha > 0) {
      useCutmix = rng.uniform() < opts.switchProb;
      lambda = useCutmix
        ? sampleBeta(rng, opts.cutmixAlpha, opts.cutmixAlpha)
        : sampleBeta(rng, opts.mixupAlpha, opts.mixupAlpha);
    } else if (opts.mixupAlpha > 0) {
      lambda = sampleBeta(rng, opts.mixupAlpha, opts.mixupAlpha);
    } else {
      useCutmix = true;
      lambda = sampleBeta(rng, opts.cutmixAlpha, opts.cutmixAlpha);
    }
  }
  if (lambda === 1) return applyMix(images, labels, shape, { method: "none", lambda: 1 }, opts);
  if (!useCutmix) return applyMix(images, labels, shape, { method: "mixup", lambda }, opts);
  const center = { cy: rng.int(shape.height), cx: rng.int(shape.width) };
  return applyMix(images, labels, shape, { method: "cutmix", lambda, ...center }, opts);
}

/** What `mixBatch` drew for a batch: the method, λ before CutMix's area correction, the box centre. */
export type MixDraw =
  | { method: "none" | "mixup"; lambda: number }
  | { method: "cutmix"; lambda: number; cy: number; cx: number };

/** Mixes `images` in place as `draw` says (timm `Mixup._mix_batch`) and returns the soft targets. */
export function applyMix(
  images: Float32Array,
  labels: ArrayLike<number>,
  shape: { batch: number; channels: number; height: number; width: number },
  draw: MixDraw,
  opts: Pick<MixOptions, "labelSmoothing" | "numClasses">,
): MixResult {
  const { batch: B, channels: C, height: H, width: W } = shape;
  const targets = (lambda: number) => mixTargets(labels, opts.numClasses, lambda, opts.labelSmoothing);
  if (draw.method === "none" || draw.lambda === 1) return { targets: targets(1), lambda: 1, method: "none" };
  const size = C * H * W;
  const original = Float32Array.from(images); // partners must be read before they are overwritten
  if (draw.method === "cutmix") {
    const box = cutmixBox(H, W, draw.lambda, draw.cy, draw.cx);
    const lambda = 1 - ((box.y1 - box.y0) * (box.x1 - box.x0)) / (H * W);
    for (let i = 0; i < B; i++) {
      const dst = i * size;
      const src = (B - 1 - i) * size;
      for (let c = 0; c < C; c++) {
        for (let y = box.y0; y < box.y1; y++) {
          const row = c * H * W + y * W;
          for (let x = box.x0; x < box.x1; x++) images[dst + row + x] = original[src + row + x]!;
        }
      }
    }
    return { targets: targets(lambda), lambda, method: "cutmix", box };
  }
  const { lambda } = draw;
  for (let i = 0; i < B; i++) {
    const dst = i * size;
    const src = (B - 1 - i) * size;
    for (let k = 0; k < size; k++)
      images[dst + k] = original[dst + k]! * lambda + original[src + k]! * (1 - lambda);
  }
  return { targets: targets(lambda), lambda, method: "mixup" };
}
