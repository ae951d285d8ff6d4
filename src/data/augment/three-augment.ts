/**
 * DeiT-III's ThreeAugment: each image gets exactly one of greyscale, solarize (threshold 128) or
 * Gaussian blur (σ ~ U[0.1, 2]), chosen uniformly; then colour jitter (brightness, contrast,
 * saturation factors ~ U[1−j, 1+j], in random order, as torchvision ColorJitter).
 */
import type { Rng } from "../../engine/rng.ts";
import { brightness, contrast, gaussianBlur, grayscale, saturation, solarize } from "./color.ts";
import type { Image } from "./image.ts";

export function threeAugment(img: Image, rng: Rng, colorJitter: number): Image {
  const choice = rng.int(3);
  let out =
    choice === 0
      ? grayscale(img)
      : choice === 1
        ? solarize(img, 128)
        : gaussianBlur(img, 0.1 + rng.uniform() * 1.9);
  if (colorJitter > 0) out = colorJitterOp(out, rng, colorJitter);
  return out;
}

export function colorJitterOp(img: Image, rng: Rng, strength: number): Image {
  const order = rng.permutation(3);
  let out = img;
  for (const k of order) {
    const factor = Math.max(0, 1 - strength + rng.uniform() * 2 * strength);
    out = k === 0 ? brightness(out, factor) : k === 1 ? contrast(out, factor) : saturation(out, factor);
  }
  return out;
}
