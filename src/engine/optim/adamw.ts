/**
 * AdamW, torch.optim.AdamW semantics (decoupled weight decay):
 *   p ← p·(1 − lr·wd)                   (decay group only)
 *   m ← m + (1−β1)(g − m)               (torch's lerp form)
 *   v ← β2·v + (1−β2)·g²
 *   p ← p − lr/(1−β1^t) · m / (√v/√(1−β2^t) + ε)
 */

import { onDecayGroup, powStep, type UpdateInputs, type UpdateResult } from "./flat.ts";
import type { AdamWConfig } from "./types.ts";

export function adamwUpdate(
  cfg: AdamWConfig,
  { b, param, grad, state, step, lr, decaySize }: UpdateInputs,
): UpdateResult {
  const beta1 = cfg.beta1 ?? 0.9;
  const beta2 = cfg.beta2 ?? 0.999;
  const eps = cfg.eps ?? 1e-8;
  const wd = cfg.weightDecay ?? 0.05;
  const [m0, v0] = state as [typeof param, typeof param];

  const decayed =
    wd === 0 ? param : onDecayGroup(b, param, decaySize, (p) => b.mul(p, b.sub(1, b.mul(lr, wd))));
  const m = b.add(m0, b.mul(b.sub(grad, m0), 1 - beta1));
  const v = b.add(b.mul(v0, beta2), b.mul(b.mul(grad, grad), 1 - beta2));
  const bc1 = b.sub(1, powStep(b, beta1, step));
  const bc2 = b.sub(1, powStep(b, beta2, step));
  // m/(√v/√bc2 + ε)·lr/bc1 = m/(√v + ε·√bc2)·(lr·√bc2/bc1): the scalar factors fold into
  // scalars, leaving one pass fewer over the flat vectors.
  const sqrtBc2 = b.sqrt(bc2);
  const stepSize = b.div(b.mul(lr, sqrtBc2), bc1);
  const denom = b.add(b.sqrt(v), b.mul(sqrtBc2, eps));
  const p = b.sub(decayed, b.mul(b.div(m, denom), stepSize));
  return { param: p, state: [m, v] };
}
