/**
 * Gamma and Beta sampling from the project's Rng (Mixup/CutMix draw λ ~ Beta(α, α)).
 * Gamma: Marsaglia & Tsang (2000), with the a < 1 boost Gamma(a) = Gamma(a+1)·U^(1/a).
 */
import type { Rng } from "../../engine/rng.ts";

export function sampleGamma(rng: Rng, shape: number): number {
  if (!(shape > 0) || !Number.isFinite(shape)) throw new Error(`gamma shape must be > 0, got ${shape}`);
  if (shape < 1) {
    let u = rng.uniform();
    while (u === 0) u = rng.uniform();
    return sampleGamma(rng, shape + 1) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.uniform();
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0 && Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Beta(a, b) = X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). */
export function sampleBeta(rng: Rng, a: number, b: number): number {
  const x = sampleGamma(rng, a);
  const y = sampleGamma(rng, b);
  const s = x + y;
  // Both can underflow to 0 for tiny shapes; the limit is then a coin flip between 0 and 1.
  if (s === 0) return rng.uniform() < a / (a + b) ? 1 : 0;
  return x / s;
}
