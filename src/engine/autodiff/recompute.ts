/**
 * Activation recomputation (gradient checkpointing) for `gradients`: the backward pass of a
 * marked segment (GraphBuilder.segment, e.g. one transformer block) reads a fresh copy of the
 * segment's forward nodes, built just before that segment's backward from the segment's input,
 * instead of the forward pass's own values. Only segment inputs — and what a segment reads from
 * outside (parameters; drop-path masks, cut from a graph input, so the copy multiplies by the very
 * same masks) —
 * stay alive from the forward pass; each segment's inner activations live only while its own
 * backward runs. Costs one more forward pass of the segments.
 *
 * The copy reads the segment input through `input + 0·a`, a the sum of one element of each
 * gradient the backward has made since the previous copy: the gradient reaching the segment and
 * the parameter gradients of the segment after it. That does three things the graph needs:
 *  - ONNX Runtime's common-subexpression elimination cannot merge the copy back into the
 *    original nodes (same op on the same inputs), which would bring every activation back to
 *    life: the copy's first node no longer has the original's inputs;
 *  - the copy cannot run before the backward reaches the segment: ORT orders nodes only by data
 *    dependencies, and without one it may recompute early and hold everything again;
 *  - the later segment's weight and bias gradients must be done before this copy starts. ORT's
 *    default order (a depth-first walk back from the outputs) otherwise runs the gradient chain
 *    through every block first and leaves the weight gradients — and so every copy's
 *    activations, which they read — for the end: measured, no memory saved at all without this.
 * x + 0·a equals x exactly for finite a (a zero's sign aside), so the copy computes the same
 * values as the forward pass, op for op. (A non-finite gradient makes the copy NaN, and with it
 * every earlier gradient; the step's gradient norm is non-finite either way.)
 * Measured (bench/RESULTS.md): the recomputed step's peak RSS is the same at ORT's optimisation
 * level "all" as with optimisations disabled, so nothing merged the copies back.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Node, Segment, Value } from "../ir/graph.ts";

interface SegmentCopy {
  segment: Segment;
  /** The segment's nodes that depend on its input (the ones worth recomputing). */
  inner: Set<Node>;
  /** original value → its recomputed copy, once the copy is built */
  copies?: Map<Value, Value>;
}

export class Recomputation {
  private readonly byNode = new Map<Node, SegmentCopy>();
  private readonly copyNodes = new Set<Node>();
  /** Gradients made since the last copy, which the next copy waits for (see the anchor above). */
  private pending: Value[] = [];

  constructor(
    private readonly b: GraphBuilder,
    nodes: readonly Node[],
  ) {
    for (const segment of b.graph.segments) {
      const dependent = new Set<Value>([segment.input]);
      const inner = new Set<Node>();
      for (const n of nodes.slice(segment.from, segment.to)) {
        if (!n.inputs.some((v) => dependent.has(v))) continue;
        inner.add(n);
        for (const out of n.outputs) dependent.add(out);
      }
      const entry: SegmentCopy = { segment, inner };
      for (const n of inner) this.byNode.set(n, entry);
    }
  }

  /**
   * The node a VJP rule of `node` should read: its recomputed copy when `node` is inside a
   * segment (the segment's copy is built on first use, anchored on `dy`), else `node` itself.
   */
  nodeForBackward(node: Node, dy: readonly (Value | undefined)[]): Node {
    const entry = this.byNode.get(node);
    if (!entry) return node;
    entry.copies ??= this.copySegment(entry, [...dy.filter((g) => g !== undefined), ...this.pending]);
    return entry.copies.get(node.outputs[0]!)!.producer!;
  }

  /**
   * Records the gradients `node`'s VJP rule just made for values from outside its segment
   * (parameters, the segment input), for the next copy to wait for. Gradients of values inside
   * the segment lead to those anyway.
   */
  madeGradients(node: Node, dx: readonly (Value | undefined)[], needs: readonly boolean[]): void {
    if (this.byNode.size === 0) return;
    const inner = this.byNode.get(node)?.inner;
    node.inputs.forEach((input, j) => {
      const g = dx[j];
      if (g && needs[j] && !(input.producer && inner?.has(input.producer))) this.pending.push(g);
    });
  }

  private copySegment(entry: SegmentCopy, waitFor: Value[]): Map<Value, Value> {
    const { b } = this;
    const copies = new Map<Value, Value>();
    const firsts = waitFor.map((g) => b.slice(b.reshape(g, [-1]), 0, 0, 1));
    const anchor = firsts.length === 1 ? firsts[0]! : b.reduceSum(b.concat(firsts, 0), [0], true);
    this.pending = [];
    copies.set(entry.segment.input, b.add(entry.segment.input, b.mul(anchor, 0)));
    for (const n of entry.inner) {
      const outs = b.apply(
        n.op,
        n.inputs.map((v) => copies.get(v) ?? v),
        n.attrs,
      );
      this.copyNodes.add(outs[0]!.producer!);
      n.outputs.forEach((v, i) => {
        copies.set(v, outs[i]!);
      });
    }
    return copies;
  }

  /**
   * Drops copied nodes nothing reads (e.g. the copy of a segment's last add, whose output no
   * VJP rule needs), so they are not computed for nothing. `keep` are values still to be used
   * (the gradients).
   */
  pruneUnusedCopies(keep: Iterable<Value>): void {
    const nodes = this.b.graph.nodes;
    const read = new Set<Value>(keep);
    for (const o of this.b.graph.outputs) read.add(o.value);
    const dead = new Set<Node>();
    for (let i = nodes.length - 1; i >= 0; i--) {
      const n = nodes[i]!;
      if (this.copyNodes.has(n) && !n.outputs.some((v) => read.has(v))) dead.add(n);
      else for (const v of n.inputs) read.add(v);
    }
    if (dead.size === 0) return;
    const live = nodes.filter((n) => !dead.has(n));
    nodes.length = 0;
    nodes.push(...live);
  }
}
