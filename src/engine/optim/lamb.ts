/**
 * LAMB as in timm.optim.Lamb (used by DeiT-III):
 *   g ← g / max(1, ‖g‖/max_grad_norm)                      (built-in global clip)
 *   m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
 *   u ← (m/(1−β1^t)) / (√v/√(1−β2^t) + ε)  (+ wd·p on the decay group)
 *   per parameter tensor, where the trust ratio applies (decay group, or all with always_adapt):
 *     r = ‖p‖/‖u‖ if both > 0 else 1  (clamped to ≤ 1 with trust_clip)
 *   p ← p − lr·r·u
 * Per-tensor norms come from segment sums over the flat vector (flat.ts), so the graph stays
 * a few big ops however many parameters there are.
 */
import type { Value } from "../ir/graph.ts";
import { globalNorm } from "./clip.ts";
import {
  onDecayGroup2,
  powStep,
  segmentIds,
  segmentNorms,
  type UpdateInputs,
  type UpdateResult,
} from "./flat.ts";
import type { LambConfig } from "./types.ts";

export function lambUpdate(cfg: LambConfig, inputs: UpdateInputs): UpdateResult {
  const { b, param, state, step, lr, decaySize, segmentSizes } = inputs;
  const beta1 = cfg.beta1 ?? 0.9;
  const beta2 = cfg.beta2 ?? 0.999;
  const eps = cfg.eps ?? 1e-6;
  const wd = cfg.weightDecay ?? 0.01;
  const maxGradNorm = cfg.maxGradNorm ?? 1.0;
  const [m0, v0] = state as [Value, Value];

  let grad = inputs.grad;
  if (maxGradNorm > 0) grad = b.div(grad, b.max(b.div(globalNorm(b, grad), maxGradNorm), 1));
  const m = b.add(b.mul(m0, beta1), b.mul(grad, 1 - beta1));
  const v = b.add(b.mul(v0, beta2), b.mul(b.mul(grad, grad), 1 - beta2));
  const bc1 = b.sub(1, powStep(b, beta1, step));
  const bc2 = b.sub(1, powStep(b, beta2, step));
  const denom = b.add(b.div(b.sqrt(v), b.sqrt(bc2)), eps);
  let update = b.div(b.div(m, bc1), denom);
  if (wd !== 0) update = onDecayGroup2(b, update, param, decaySize, (u, p) => b.add(u, b.mul(p, wd)));

  // Which parameter tensors get a trust ratio: timm applies it where the group's weight decay
  // is non-zero (our decay group) or everywhere with always_adapt.
  let decaySegments = 0;
  for (let acc = 0; acc < decaySize; decaySegments++) acc += segmentSizes[decaySegments]!;
  const adaptSegments = cfg.alwaysAdapt ? segmentSizes.length : wd !== 0 ? decaySegments : 0;
  if (adaptSegments > 0) {
    const ids = segmentIds(b, segmentSizes);
    const wNorm = segmentNorms(b, param, ids, segmentSizes.length);
    const uNorm = segmentNorms(b, update, ids, segmentSizes.length);
    let trust = b.where(b.greater(wNorm, 0), b.where(b.greater(uNorm, 0), b.div(wNorm, uNorm), 1), 1);
    if (cfg.trustClip) trust = b.min(trust, 1);
    if (adaptSegments < segmentSizes.length) {
      const adapt = Uint8Array.from(segmentSizes, (_, i) => (i < adaptSegments ? 1 : 0));
      trust = b.where(b.constant(adapt, [segmentSizes.length], "bool"), trust, 1);
    }
    update = b.mul(update, b.gather(trust, ids, 0));
  }
  return { param: b.sub(param, b.mul(update, lr)), state: [m, v] };
}
