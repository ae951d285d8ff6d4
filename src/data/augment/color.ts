/**
 * Photometric ops on 0..1 CHW images, matching PIL's ImageOps / ImageEnhance semantics (which
 * timm's RandAugment and DeiT-III's ThreeAugment are defined by). Ops that PIL defines on 8-bit
 * values (solarize, posterize, equalize) work on the 8-bit grid.
 */
import { clamp01, emptyLike, type Image, luma, to8 } from "./image.ts";

function map(img: Image, f: (v: number) => number): Image {
  const out = emptyLike(img);
  for (let i = 0; i < img.data.length; i++) out.data[i] = f(img.data[i]!);
  return out;
}

/** Blend with a degenerate image: out = degenerate + factor·(img − degenerate), clipped. */
function blend(img: Image, degenerate: Float32Array, factor: number): Image {
  const out = emptyLike(img);
  for (let i = 0; i < img.data.length; i++) {
    const dg = degenerate[i]!;
    out.data[i] = clamp01(dg + factor * (img.data[i]! - dg));
  }
  return out;
}

export function brightness(img: Image, factor: number): Image {
  return map(img, (v) => clamp01(v * factor));
}

/** PIL ImageEnhance.Contrast: blend with the mean grey level of the image. */
export function contrast(img: Image, factor: number): Image {
  const plane = img.height * img.width;
  let sum = 0;
  for (let p = 0; p < plane; p++) sum += to8(luma(img, p));
  const mean = Math.round(sum / plane) / 255;
  return map(img, (v) => clamp01(mean + factor * (v - mean)));
}

/** PIL ImageEnhance.Color (saturation): blend with the greyscale image. */
export function saturation(img: Image, factor: number): Image {
  if (img.channels < 3) return img;
  const plane = img.height * img.width;
  const grey = new Float32Array(img.data.length);
  for (let p = 0; p < plane; p++) {
    const l = luma(img, p);
    for (let c = 0; c < img.channels; c++) grey[c * plane + p] = l;
  }
  return blend(img, grey, factor);
}

/** PIL ImageEnhance.Sharpness: blend with the 3×3 "smooth" filter (border pixels unchanged). */
export function sharpness(img: Image, factor: number): Image {
  const { channels: C, height: H, width: W } = img;
  const smooth = Float32Array.from(img.data);
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    for (let y = 1; y < H - 1; y++) {
      for (let x = 1; x < W - 1; x++) {
        let acc = 0;
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            acc += img.data[base + (y + dy) * W + x + dx]! * (dx === 0 && dy === 0 ? 5 : 1);
          }
        }
        smooth[base + y * W + x] = acc / 13;
      }
    }
  }
  return blend(img, smooth, factor);
}

/** Inverts pixels at or above `threshold` (0..256 on the 8-bit scale; 256 = no-op). */
export function solarize(img: Image, threshold = 128): Image {
  return map(img, (v) => {
    const q = to8(v);
    return q >= threshold ? (255 - q) / 255 : v;
  });
}

/** Adds `add` (8-bit units) to pixels below `threshold`. */
export function solarizeAdd(img: Image, add: number, threshold = 128): Image {
  return map(img, (v) => {
    const q = to8(v);
    return q < threshold ? Math.min(255, q + add) / 255 : v;
  });
}

/** Keeps the top `bits` bits of each 8-bit value (0 bits → black, as PIL). */
export function posterize(img: Image, bits: number): Image {
  const b = Math.max(0, Math.min(8, Math.round(bits)));
  if (b >= 8) return img;
  const mask = ~(2 ** (8 - b) - 1) & 0xff;
  return map(img, (v) => (to8(v) & mask) / 255);
}

export function invert(img: Image): Image {
  return map(img, (v) => 1 - v);
}

/** Per-channel min/max stretch to the full range (PIL ImageOps.autocontrast, cutoff 0). */
export function autocontrast(img: Image): Image {
  const plane = img.height * img.width;
  const out = emptyLike(img);
  for (let c = 0; c < img.channels; c++) {
    let lo = 255;
    let hi = 0;
    for (let p = 0; p < plane; p++) {
      const q = to8(img.data[c * plane + p]!);
      if (q < lo) lo = q;
      if (q > hi) hi = q;
    }
    const scale = hi > lo ? 255 / (hi - lo) : 0;
    for (let p = 0; p < plane; p++) {
      const i = c * plane + p;
      out.data[i] = scale === 0 ? img.data[i]! : clamp01(((to8(img.data[i]!) - lo) * scale) / 255);
    }
  }
  return out;
}

/** Per-channel histogram equalisation, PIL ImageOps.equalize's lookup table. */
export function equalize(img: Image): Image {
  const plane = img.height * img.width;
  const out = emptyLike(img);
  for (let c = 0; c < img.channels; c++) {
    const hist = new Int32Array(256);
    for (let p = 0; p < plane; p++) hist[to8(img.data[c * plane + p]!)]!++;
    let last = 255;
    while (last > 0 && hist[last] === 0) last--;
    const step = Math.floor((plane - hist[last]!) / 255);
    if (step === 0) {
      out.data.set(img.data.subarray(c * plane, (c + 1) * plane), c * plane);
      continue;
    }
    const lut = new Float32Array(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step)) / 255;
      n += hist[i]!;
    }
    for (let p = 0; p < plane; p++) out.data[c * plane + p] = lut[to8(img.data[c * plane + p]!)]!;
  }
  return out;
}

/** Greyscale, keeping the channel count (torchvision Grayscale(num_output_channels=C)). */
export function grayscale(img: Image): Image {
  const plane = img.height * img.width;
  const out = emptyLike(img);
  for (let p = 0; p < plane; p++) {
    const l = luma(img, p);
    for (let c = 0; c < img.channels; c++) out.data[c * plane + p] = l;
  }
  return out;
}

/** Separable Gaussian blur with standard deviation `sigma` pixels, edges replicated. */
export function gaussianBlur(img: Image, sigma: number): Image {
  if (!(sigma > 0)) return img;
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    k[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
    sum += k[i + r]!;
  }
  for (let i = 0; i < k.length; i++) k[i]! /= sum;
  const { channels: C, height: H, width: W } = img;
  const tmp = new Float32Array(img.data.length);
  const out = emptyLike(img);
  for (let c = 0; c < C; c++) {
    const base = c * H * W;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const sx = Math.min(W - 1, Math.max(0, x + i));
          acc += k[i + r]! * img.data[base + y * W + sx]!;
        }
        tmp[base + y * W + x] = acc;
      }
    }
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        let acc = 0;
        for (let i = -r; i <= r; i++) {
          const sy = Math.min(H - 1, Math.max(0, y + i));
          acc += k[i + r]! * tmp[base + sy * W + x]!;
        }
        out.data[base + y * W + x] = acc;
      }
    }
  }
  return out;
}
