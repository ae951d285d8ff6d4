/**
 * SGD with momentum, torch.optim.SGD semantics (dampening 0):
 *   g ← g + wd·p                     (L2 decay, decay group only)
 *   buf ← μ·buf + g                  (buf starts at 0, so step 1 gives buf = g as in torch)
 *   p ← p − lr·(nesterov ? g + μ·buf : buf)
 */
import { onDecayGroup2, type UpdateInputs, type UpdateResult } from "./flat.ts";
import type { SgdConfig } from "./types.ts";

export function sgdUpdate(
  cfg: SgdConfig,
  { b, param, grad, state, lr, decaySize }: UpdateInputs,
): UpdateResult {
  const momentum = cfg.momentum ?? 0.9;
  const wd = cfg.weightDecay ?? 0;
  let g = wd === 0 ? grad : onDecayGroup2(b, grad, param, decaySize, (gh, ph) => b.add(gh, b.mul(ph, wd)));
  if (momentum === 0) return { param: b.sub(param, b.mul(g, lr)), state: [] };
  const buf = b.add(b.mul(state[0]!, momentum), g);
  g = cfg.nesterov ? b.add(g, b.mul(buf, momentum)) : buf;
  return { param: b.sub(param, b.mul(g, lr)), state: [buf] };
}
