/**
 * Separable resampling of a CHW image region to a new size with a triangle (bilinear) filter
 * whose support widens when shrinking — the antialiasing PIL and torchvision (antialias=True)
 * apply. Without it, downscaling (random-resized-crop, large JPEGs) aliases fine texture.
 */

export interface Box {
  /** Left edge, top edge, width and height in source pixels (fractional allowed). */
  x: number;
  y: number;
  w: number;
  h: number;
}

interface AxisWeights {
  start: Int32Array; // first source index per output pixel
  count: Int32Array; // taps per output pixel
  weights: Float32Array; // count[i] weights at i*maxTaps
  maxTaps: number;
}

function axisWeights(srcLen: number, boxStart: number, boxLen: number, outLen: number): AxisWeights {
  const scale = boxLen / outLen;
  const support = Math.max(scale, 1); // filter radius in source pixels
  const maxTaps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outLen);
  const count = new Int32Array(outLen);
  const weights = new Float32Array(outLen * maxTaps);
  for (let i = 0; i < outLen; i++) {
    const center = boxStart + (i + 0.5) * scale;
    let lo = Math.max(0, Math.floor(center - support));
    const hi = Math.min(srcLen - 1, Math.ceil(center + support) - 1);
    if (lo > hi) lo = hi; // box entirely outside the image (never from our callers): nearest edge
    let sum = 0;
    let n = 0;
    for (let j = lo; j <= hi && n < maxTaps; j++, n++) {
      const t = Math.abs((j + 0.5 - center) / support);
      const wgt = t < 1 ? 1 - t : 0;
      weights[i * maxTaps + n] = wgt;
      sum += wgt;
    }
    if (sum === 0) {
      // The box is narrower than one pixel and between centers: take the nearest pixel.
      const nearest = Math.min(srcLen - 1, Math.max(0, Math.floor(center)));
      start[i] = nearest;
      count[i] = 1;
      weights[i * maxTaps] = 1;
      continue;
    }
    for (let m = 0; m < n; m++) weights[i * maxTaps + m]! /= sum;
    start[i] = lo;
    count[i] = n;
  }
  return { start, count, weights, maxTaps };
}

/**
 * Resamples `box` of the CHW image `src` (c×h×w) to outH×outW, writing CHW floats into `out`.
 * Values keep the input's scale (0..255 stays 0..255).
 */
export function resampleChw(
  src: ArrayLike<number>,
  c: number,
  h: number,
  w: number,
  box: Box,
  outH: number,
  outW: number,
  out: Float32Array = new Float32Array(c * outH * outW),
): Float32Array {
  const ax = axisWeights(w, box.x, box.w, outW);
  const ay = axisWeights(h, box.y, box.h, outH);
  const tmp = new Float32Array(h * outW); // horizontal pass result for one channel
  for (let ch = 0; ch < c; ch++) {
    const base = ch * h * w;
    for (let y = 0; y < h; y++) {
      const row = base + y * w;
      for (let x = 0; x < outW; x++) {
        const s = ax.start[x]!;
        const n = ax.count[x]!;
        const wo = x * ax.maxTaps;
        let acc = 0;
        for (let m = 0; m < n; m++) acc += ax.weights[wo + m]! * src[row + s + m]!;
        tmp[y * outW + x] = acc;
      }
    }
    const obase = ch * outH * outW;
    for (let y = 0; y < outH; y++) {
      const s = ay.start[y]!;
      const n = ay.count[y]!;
      const wo = y * ay.maxTaps;
      for (let x = 0; x < outW; x++) {
        let acc = 0;
        for (let m = 0; m < n; m++) acc += ay.weights[wo + m]! * tmp[(s + m) * outW + x]!;
        out[obase + y * outW + x] = acc;
      }
    }
  }
  return out;
}
