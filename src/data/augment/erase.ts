/**
 * timm RandomErasing, applied after normalisation: with probability `prob`, one rectangle of
 * area ∈ `area`·(H·W) and log-uniform aspect ∈ `aspect` (10 tries to fit) is replaced by
 * per-pixel N(0, 1) noise ("pixel"), per-channel noise ("channel") or zeros ("const").
 */
import type { Rng } from "../../engine/rng.ts";
import type { Image } from "./image.ts";

export interface RandomErasingOptions {
  prob: number;
  area: readonly [number, number];
  aspect: readonly [number, number];
  mode: "pixel" | "channel" | "const";
}

/** Erases in place; returns whether a region was erased. */
export function randomErasing(img: Image, rng: Rng, opts: RandomErasingOptions): boolean {
  if (rng.uniform() >= opts.prob) return false;
  const { channels: C, height: H, width: W } = img;
  const logLo = Math.log(opts.aspect[0]);
  const logHi = Math.log(opts.aspect[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = H * W * (opts.area[0] + rng.uniform() * (opts.area[1] - opts.area[0]));
    const aspect = Math.exp(logLo + rng.uniform() * (logHi - logLo));
    const h = Math.round(Math.sqrt(target * aspect));
    const w = Math.round(Math.sqrt(target / aspect));
    if (w < W && h < H && w > 0 && h > 0) {
      const top = rng.int(H - h + 1);
      const left = rng.int(W - w + 1);
      for (let c = 0; c < C; c++) {
        const channelValue = opts.mode === "channel" ? rng.normal() : 0;
        for (let y = top; y < top + h; y++) {
          for (let x = left; x < left + w; x++) {
            img.data[(c * H + y) * W + x] = opts.mode === "pixel" ? rng.normal() : channelValue;
          }
        }
      }
      return true;
    }
  }
  return false;
}
