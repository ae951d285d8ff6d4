/**
 * RandAugment as timm implements it for DeiT (`rand-m9-mstd0.5-inc1`): per image, pick `ops`
 * operations uniformly with replacement; each is applied with probability `prob` at magnitude
 * m ~ Normal(magnitude, magnitudeStd) clipped to [0, 10]; signed ops flip sign with p = 0.5.
 * The "increasing" variants are used, so a larger magnitude is always a stronger change.
 */
import type { Rng } from "../../engine/rng.ts";
import {
  autocontrast,
  brightness,
  contrast,
  equalize,
  invert,
  posterize,
  saturation,
  sharpness,
  solarize,
  solarizeAdd,
} from "./color.ts";
import { affine, rotate } from "./geometric.ts";
import type { Image } from "./image.ts";

export interface RandAugmentOptions {
  ops: number;
  magnitude: number;
  magnitudeStd: number;
  prob: number;
  /** Fill for pixels a geometric op uncovers, per channel on the 0..1 scale (timm: dataset mean). */
  fill: readonly number[];
}

type Op = (img: Image, level: number, rng: Rng, fill: readonly number[]) => Image;

const signed = (rng: Rng, v: number) => (rng.uniform() < 0.5 ? -v : v);
const enhance =
  (f: (img: Image, factor: number) => Image): Op =>
  (img, m, rng) =>
    f(img, 1 + signed(rng, (m / 10) * 0.9));

/** The operation table (timm `_RAND_INCREASING_TRANSFORMS`), level m in [0, 10]. */
export const RAND_AUGMENT_OPS: Readonly<Record<string, Op>> = {
  AutoContrast: (img) => autocontrast(img),
  Equalize: (img) => equalize(img),
  Invert: (img) => invert(img),
  Rotate: (img, m, rng, fill) => rotate(img, signed(rng, (m / 10) * 30), fill),
  PosterizeIncreasing: (img, m) => posterize(img, 4 - Math.floor((m / 10) * 4)),
  SolarizeIncreasing: (img, m) => solarize(img, 256 - Math.floor((m / 10) * 256)),
  SolarizeAdd: (img, m) => solarizeAdd(img, Math.floor((m / 10) * 110)),
  ColorIncreasing: enhance(saturation),
  ContrastIncreasing: enhance(contrast),
  BrightnessIncreasing: enhance(brightness),
  SharpnessIncreasing: enhance(sharpness),
  ShearX: (img, m, rng, fill) => affine(img, [1, signed(rng, (m / 10) * 0.3), 0, 0, 1, 0], fill),
  ShearY: (img, m, rng, fill) => affine(img, [1, 0, 0, signed(rng, (m / 10) * 0.3), 1, 0], fill),
  TranslateXRel: (img, m, rng, fill) =>
    affine(img, [1, 0, signed(rng, (m / 10) * 0.45) * img.width, 0, 1, 0], fill),
  TranslateYRel: (img, m, rng, fill) =>
    affine(img, [1, 0, 0, 0, 1, signed(rng, (m / 10) * 0.45) * img.height], fill),
};

const OP_NAMES = Object.keys(RAND_AUGMENT_OPS);

export function randAugment(img: Image, rng: Rng, opts: RandAugmentOptions): Image {
  let out = img;
  for (let k = 0; k < opts.ops; k++) {
    const name = OP_NAMES[rng.int(OP_NAMES.length)]!;
    if (rng.uniform() >= opts.prob) continue;
    let m = opts.magnitude;
    if (opts.magnitudeStd === Number.POSITIVE_INFINITY) m = rng.uniform() * m;
    else if (opts.magnitudeStd > 0) m = m + opts.magnitudeStd * rng.normal();
    m = Math.min(10, Math.max(0, m));
    out = RAND_AUGMENT_OPS[name]!(out, m, rng, opts.fill);
  }
  return out;
}
