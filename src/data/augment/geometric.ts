/**
 * Geometric augmentations: random-resized crop (torchvision/timm semantics), padded random
 * crop (the CIFAR / DeiT-III "simple random crop"), horizontal flip, and an affine warp with
 * bilinear sampling used by RandAugment's rotate / shear / translate.
 */
import type { Rng } from "../../engine/rng.ts";
import { type Box, resampleChw } from "../image/resample.ts";
import { emptyLike, type Image } from "./image.ts";

export interface RandomResizedCropOptions {
  height: number;
  width: number;
  /** Range of the crop's area as a fraction of the image (timm default [0.08, 1]). */
  scale: readonly [number, number];
  /** Range of the crop's aspect ratio w/h, sampled log-uniformly (default [3/4, 4/3]). */
  ratio: readonly [number, number];
}

/** torchvision `RandomResizedCrop.get_params`: 10 tries, then a centre crop clamped to `ratio`. */
export function sampleResizedCropBox(
  rng: Rng,
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
): Box {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng.uniform() * (scale[1] - scale[0]));
    const aspect = Math.exp(logLo + rng.uniform() * (logHi - logLo));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const y = rng.int(height - h + 1);
      const x = rng.int(width - w + 1);
      return { x, y, w, h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), w, h };
}

export function randomResizedCrop(img: Image, rng: Rng, opts: RandomResizedCropOptions): Image {
  const box = sampleResizedCropBox(rng, img.height, img.width, opts.scale, opts.ratio);
  const out = emptyLike(img, opts.height, opts.width);
  resampleChw(img.data, img.channels, img.height, img.width, box, opts.height, opts.width, out.data);
  return out;
}

/** Resizes the whole image (no randomness): for eval or when the model size differs. */
export function resize(img: Image, height: number, width: number): Image {
  if (img.height === height && img.width === width) return img;
  const out = emptyLike(img, height, width);
  const box = { x: 0, y: 0, w: img.width, h: img.height };
  resampleChw(img.data, img.channels, img.height, img.width, box, height, width, out.data);
  return out;
}

/**
 * Pads by `padding` on every side (zeros or reflection) and takes a random crop of the
 * original size — torchvision `RandomCrop(size, padding, padding_mode)`: the offset is drawn
 * anew for every image, row and column each uniform over the 2·padding + 1 positions.
 */
export function paddedRandomCrop(img: Image, rng: Rng, padding: number, mode: "zero" | "reflect"): Image {
  const top = rng.int(2 * padding + 1) - padding; // source row of output row 0
  const left = rng.int(2 * padding + 1) - padding;
  return shiftedCrop(img, top, left, mode);
}

/**
 * The crop of the padded image whose output pixel (y, x) is source pixel (y + top, x + left);
 * outside the image: 0 (`zero`, torchvision's default fill, before normalisation) or the
 * reflection without repeating the edge pixel (torchvision/numpy "reflect"; |top|, |left| < size).
 */
export function shiftedCrop(img: Image, top: number, left: number, mode: "zero" | "reflect"): Image {
  const { channels: C, height: H, width: W } = img;
  const out = emptyLike(img);
  const reflect = (i: number, n: number) => {
    if (n === 1) return 0;
    const period = 2 * (n - 1);
    let m = ((i % period) + period) % period;
    if (m >= n) m = period - m;
    return m;
  };
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    for (let y = 0; y < H; y++) {
      let sy = y + top;
      const yIn = sy >= 0 && sy < H;
      if (!yIn && mode === "reflect") sy = reflect(sy, H);
      for (let x = 0; x < W; x++) {
        let sx = x + left;
        const xIn = sx >= 0 && sx < W;
        if (mode === "zero" && (!yIn || !xIn)) continue; // stays 0
        if (!xIn) sx = reflect(sx, W);
        out.data[base + y * W + x] = img.data[base + sy * W + sx]!;
      }
    }
  }
  return out;
}

export function horizontalFlip(img: Image): Image {
  const { channels: C, height: H, width: W } = img;
  const out = emptyLike(img);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      const row = (c * H + y) * W;
      for (let x = 0; x < W; x++) out.data[row + x] = img.data[row + W - 1 - x]!;
    }
  }
  return out;
}

/**
 * Affine warp in PIL's convention: output pixel (x, y) samples the input at
 * (a·x + b·y + c, d·x + e·y + f), coordinates at pixel centres; outside → `fill` (per channel).
 */
export function affine(
  img: Image,
  m: readonly [number, number, number, number, number, number],
  fill: readonly number[],
): Image {
  const { channels: C, height: H, width: W } = img;
  const out = emptyLike(img);
  const [a, b, c0, d, e, f0] = m;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sx = a * (x + 0.5) + b * (y + 0.5) + c0 - 0.5;
      const sy = d * (x + 0.5) + e * (y + 0.5) + f0 - 0.5;
      const p = y * W + x;
      if (sx < -0.5 || sy < -0.5 || sx > W - 0.5 || sy > H - 0.5) {
        for (let ch = 0; ch < C; ch++) out.data[ch * H * W + p] = fill[ch] ?? fill[0] ?? 0;
        continue;
      }
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      const xa = Math.max(0, x0);
      const xb = Math.min(W - 1, x0 + 1);
      const ya = Math.max(0, y0);
      const yb = Math.min(H - 1, y0 + 1);
      for (let ch = 0; ch < C; ch++) {
        const base = ch * H * W;
        const v00 = img.data[base + ya * W + xa]!;
        const v01 = img.data[base + ya * W + xb]!;
        const v10 = img.data[base + yb * W + xa]!;
        const v11 = img.data[base + yb * W + xb]!;
        out.data[base + p] = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy;
      }
    }
  }
  return out;
}

/** Rotation by `degrees` counter-clockwise about the image centre (PIL's `Image.rotate` matrix). */
export function rotate(img: Image, degrees: number, fill: readonly number[]): Image {
  const t = (degrees * Math.PI) / 180;
  const a = Math.cos(t);
  const b = -Math.sin(t);
  const d = Math.sin(t);
  const e = Math.cos(t);
  const cx = img.width / 2;
  const cy = img.height / 2;
  // Sampling map about the centre: in = M·(out − c) + c.
  return affine(img, [a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy], fill);
}
