/** Per-channel normalisation (x − mean) / std, and dataset statistics to choose mean and std. */
import type { Dataset } from "../dataset.ts";
import type { Image } from "./image.ts";

export function normalizeInPlace(img: Image, mean: readonly number[], std: readonly number[]): Image {
  const plane = img.height * img.width;
  for (let c = 0; c < img.channels; c++) {
    const m = mean.length === 1 ? mean[0]! : mean[c]!;
    const inv = 1 / (std.length === 1 ? std[0]! : std[c]!);
    const base = c * plane;
    for (let p = 0; p < plane; p++) img.data[base + p] = (img.data[base + p]! - m) * inv;
  }
  return img;
}

/**
 * Per-channel mean and standard deviation on the 0..1 scale over up to `maxImages` records
 * (evenly spaced, so the estimate is deterministic), e.g. to fill `normalize` for a new dataset.
 */
export function channelStats(ds: Dataset, maxImages = 10_000): { mean: number[]; std: number[] } {
  const n = Math.min(ds.length, maxImages);
  const plane = ds.height * ds.width;
  const sum = new Float64Array(ds.channels);
  const sq = new Float64Array(ds.channels);
  for (let k = 0; k < n; k++) {
    const img = ds.getImage(Math.floor((k * ds.length) / n));
    const scale = img instanceof Uint8Array ? 1 / 255 : 1;
    for (let c = 0; c < ds.channels; c++) {
      for (let p = 0; p < plane; p++) {
        const v = img[c * plane + p]! * scale;
        sum[c]! += v;
        sq[c]! += v * v;
      }
    }
  }
  const count = n * plane;
  const mean = Array.from(sum, (s) => s / count);
  const std = Array.from(sq, (s, c) => Math.sqrt(Math.max(0, s / count - mean[c]! ** 2)));
  return { mean, std };
}
