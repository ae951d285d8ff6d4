/**
 * Reverse-mode differentiation at graph-build time: `gradients` appends the backward pass to
 * the graph being built, using one VJP rule per op (rules.ts).
 *
 * Only the nodes on a path from a differentiated value (`wrt`) to the loss get a rule applied;
 * everything else — frozen parameters, data preprocessing, branches the loss does not see — gets
 * no backward work. A frozen parameter simply isn't in `wrt`: it receives no gradient, yet
 * gradients flow *through* the ops that use it to whatever earlier trainable values feed them.
 *
 * A gradient the engine cannot compute is an error, never a silent zero: an op on such a path
 * whose table entry is `noRule(…)` (or that has no entry), or a rule that returns nothing for an
 * input that needs a gradient, throws, naming the op and the values. Ops marked `ZERO_GRADIENT`
 * (comparisons, argMax, sign, dimSize, stopGradient) stop gradients as they should, and inputs
 * that are not float (indices, labels, conditions) never need one.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import { isFloatDType } from "../ir/dtype.ts";
import type { Node, Value } from "../ir/graph.ts";
import type { OpName } from "../ir/ops.ts";
import { formatShape, shapesEqual } from "../ir/shape.ts";
import { Recomputation } from "./recompute.ts";
import { VJP_RULES, type VjpEntry, type VjpRule, ZERO_GRADIENT } from "./rules.ts";

export interface GradientOptions {
  /** Gradient of the final objective w.r.t. `loss` (default: 1, which requires a scalar loss). */
  seed?: Value;
  /**
   * Recompute the graph's marked segments (GraphBuilder.segment) for the backward pass instead
   * of keeping their activations from the forward pass (recompute.ts). Same gradients, less
   * memory, one more forward pass of the segments.
   */
  recompute?: boolean;
}

/**
 * d loss / d w for each w in `wrt`, as new values in `b`'s graph. An entry is undefined when the
 * loss does not depend on that value (callers decide whether that is zero or an error).
 */
export function gradients(
  b: GraphBuilder,
  loss: Value,
  wrt: readonly Value[],
  opts: GradientOptions = {},
): (Value | undefined)[] {
  if (!isFloatDType(loss.dtype)) throw new Error(`gradients: loss must be float, got ${loss}`);
  if (!opts.seed && loss.rank !== 0)
    throw new Error(`gradients: loss ${loss} is not a scalar; pass a seed gradient of its shape`);
  for (const w of wrt)
    if (!isFloatDType(w.dtype)) throw new Error(`gradients: cannot differentiate w.r.t. ${w}`);

  const nodes = b.graph.nodes.slice(); // the forward graph as it is now
  const active = activeNodes(nodes, loss, wrt);
  const grads = new Map<Value, Value>();
  grads.set(loss, opts.seed ?? b.scalar(1, loss.dtype));
  const recomputation = opts.recompute ? new Recomputation(b, nodes) : undefined;

  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    const needs = active.get(node);
    if (!needs) continue;
    const dy = node.outputs.map((v) => grads.get(v));
    if (dy.every((g) => g === undefined)) continue;
    const rule = entryOf(node) as VjpRule<OpName>; // activeNodes let only rules through
    // The rule reads the forward values from the segment's recomputed copy when there is one;
    // gradients are still keyed by the original values.
    const read = recomputation?.nodeForBackward(node, dy) ?? node;
    const dx = rule({ b, node: read, x: read.inputs, y: read.outputs, dy, needs });
    recomputation?.madeGradients(node, dx, needs);
    node.inputs.forEach((input, j) => {
      if (!needs[j]) return;
      const g = dx[j];
      if (!g)
        throw new Error(
          `gradients: the VJP rule of ${node.op} gave no gradient for its input ${j} ${input}, which needs one`,
        );
      checkGradient(node, j, input, g);
      const prev = grads.get(input);
      grads.set(input, prev ? b.add(prev, g) : g);
    });
  }
  const result = wrt.map((w) => grads.get(w));
  const kept = result.filter((g): g is Value => g !== undefined);
  recomputation?.pruneUnusedCopies(kept);
  pruneUnreadBackward(b, nodes.length, kept);
  return result;
}

/**
 * Drops the backward nodes (from index `from` on) that nothing reads: neither a later node, a
 * graph output nor a returned gradient — e.g. a GEMM a rule replaced by a rescaled one
 * (rules.ts halvedGemm). The forward graph is left as the caller built it.
 */
function pruneUnreadBackward(b: GraphBuilder, from: number, keep: readonly Value[]): void {
  const nodes = b.graph.nodes;
  const read = new Set<Value>(keep);
  for (const o of b.graph.outputs) read.add(o.value);
  const dead = new Set<Node>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (i >= from && !n.outputs.some((v) => read.has(v))) dead.add(n);
    else for (const v of n.inputs) read.add(v);
  }
  if (dead.size === 0) return;
  const live = nodes.filter((n) => !dead.has(n));
  nodes.length = 0;
  nodes.push(...live);
}

/**
 * The nodes whose VJP must run, each with which of its inputs need a gradient: an input needs
 * one when it depends on a `wrt` value (forward sweep) and the loss depends on the node
 * (backward sweep).
 */
function activeNodes(nodes: readonly Node[], loss: Value, wrt: readonly Value[]): Map<Node, boolean[]> {
  const dependsOnWrt = new Set<Value>(wrt);
  for (const n of nodes) {
    if (entryOf(n) === ZERO_GRADIENT) continue;
    if (n.inputs.some((v) => dependsOnWrt.has(v)))
      for (const out of n.outputs) if (isFloatDType(out.dtype)) dependsOnWrt.add(out);
  }
  const feedsLoss = new Set<Value>([loss]);
  const active = new Map<Node, boolean[]>();
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    const entry = entryOf(n);
    if (!n.outputs.some((v) => feedsLoss.has(v)) || entry === ZERO_GRADIENT) continue;
    const needs = n.inputs.map((v) => dependsOnWrt.has(v));
    if (!needs.some(Boolean)) continue;
    if (typeof entry !== "function") {
      const out = n.outputs.find((v) => feedsLoss.has(v))!;
      const input = n.inputs[needs.indexOf(true)]!;
      throw new Error(
        `gradients: cannot differentiate through ${n.op} (output ${out}, which the loss depends on, ` +
          `from input ${input}): ${entry?.noRule ?? "no VJP rule for this op"}`,
      );
    }
    active.set(n, needs);
    n.inputs.forEach((v, j) => {
      if (needs[j]) feedsLoss.add(v);
    });
  }
  return active;
}

/** The table entry of a node's op; undefined only for an op missing from the table. */
function entryOf(n: Node): VjpEntry<OpName> | undefined {
  return VJP_RULES[n.op] as VjpEntry<OpName> | undefined;
}

function checkGradient(node: Node, index: number, input: Value, g: Value): void {
  if (g.dtype !== input.dtype || !shapesEqual(g.shape, input.shape))
    throw new Error(
      `VJP rule of ${node.op} returned gradient ${g.dtype}${formatShape(g.shape)} for input ${index} ` +
        `${input.dtype}${formatShape(input.shape)}`,
    );
}
