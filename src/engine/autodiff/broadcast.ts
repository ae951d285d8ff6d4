/**
 * Undoing numpy broadcasting in the backward pass: a gradient that arrives with the broadcast
 * (output) shape is summed over the axes that broadcasting created or stretched, then reshaped
 * to the operand's shape.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";
import { dimsEqual, formatShape, type Shape, shapesEqual } from "../ir/shape.ts";

export function sumToShape(b: GraphBuilder, grad: Value, shape: Shape): Value {
  if (shapesEqual(grad.shape, shape)) return grad;
  const lead = grad.rank - shape.length;
  if (lead < 0)
    throw new Error(
      `sumToShape: gradient ${formatShape(grad.shape)} has lower rank than ${formatShape(shape)}`,
    );
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead) axes.push(i);
    else {
      const target = shape[i - lead]!;
      if (target === 1 && grad.shape[i] !== 1) axes.push(i);
      else if (!dimsEqual(target, grad.shape[i]!))
        throw new Error(
          `sumToShape: gradient ${formatShape(grad.shape)} does not broadcast from ${formatShape(shape)}`,
        );
    }
  }
  // Summing only the extra leading axes gives the operand's shape directly (a bias gradient
  // [rows, D] → [D]: one kernel, no Reshape after it).
  const summed = axes.length ? b.reduceSum(grad, axes, axes.length > lead) : grad;
  return shapesEqual(summed.shape, shape) ? summed : b.reshape(summed, shape);
}

/** Re-insert reduced axes (as size 1) so a reduction's gradient broadcasts against its input. */
export function keepDimsShape(inputShape: Shape, axes: readonly number[]): Shape {
  const rank = inputShape.length;
  const set = new Set(axes.map((a) => (a < 0 ? a + rank : a)));
  return inputShape.map((d, i) => (set.has(i) ? 1 : d));
}

/**
 * A reduction's output gradient, reshaped so it broadcasts against the reduction's input
 * (reduced axes back as size 1). Leading size-1 axes are left to broadcasting: no node needed
 * when only leading axes were reduced.
 */
export function unreduce(b: GraphBuilder, grad: Value, inputShape: Shape, axes: readonly number[]): Value {
  const kept = keepDimsShape(inputShape, axes);
  let lead = 0;
  while (lead < kept.length && kept[lead] === 1) lead++;
  return shapesEqual(kept.slice(lead), grad.shape) ? grad : b.reshape(grad, kept);
}
