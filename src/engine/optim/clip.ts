/**
 * Global-norm gradient clipping over the flat gradient, torch.nn.utils.clip_grad_norm_
 * semantics: g ← g · min(1, max_norm / (‖g‖ + 1e-6)).
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";

export function globalNorm(b: GraphBuilder, flat: Value): Value {
  return b.sqrt(b.reduceSumSquare(flat, [0]));
}

export function clipByGlobalNorm(
  b: GraphBuilder,
  grad: Value,
  maxNorm: number,
): { grad: Value; norm: Value } {
  const norm = globalNorm(b, grad);
  const coef = b.min(b.div(maxNorm, b.add(norm, 1e-6)), 1);
  return { grad: b.mul(grad, coef), norm };
}
