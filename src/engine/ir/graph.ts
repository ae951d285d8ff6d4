/**
 * The graph data structure: values (typed tensors) and nodes (op applications), in the order
 * they were built — which is always a valid topological order, because a node can only consume
 * values that already exist.
 *
 * A graph may be the body of a control-flow op (`loop`); it then has a parent and may *capture*
 * values of its ancestors. Captured values appear inside the body as values of kind "capture"
 * and are serialised by referring to the outer value's name, as ONNX subgraphs do.
 */
import type { DType, TensorData } from "./dtype.ts";
import type { OpAttrs, OpName } from "./ops.ts"; // ops.ts does not import this file
import type { Shape } from "./shape.ts";

export type ValueKind = "input" | "constant" | "node" | "capture";

export class Value {
  /** Human-readable name: graph inputs and outputs keep theirs in ONNX; others are hints. */
  name: string | undefined;
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly kind: ValueKind,
    readonly dtype: DType,
    readonly shape: Shape,
    /** The node that computes this value (kind "node" only). */
    readonly producer?: Node,
    /** Constant payload (kind "constant" only). */
    readonly data?: TensorData,
    /** The ancestor value this one stands for (kind "capture" only). */
    readonly captured?: Value,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  /** e.g. `%12:float32[N,16,64]` */
  toString(): string {
    return `%${this.name ?? this.id}:${this.dtype}[${this.shape.join(",")}]`;
  }
}

export class Node<K extends OpName = OpName> {
  readonly outputs: Value[] = [];
  constructor(
    readonly id: number,
    readonly op: K,
    readonly inputs: readonly Value[],
    readonly attrs: OpAttrs<Graph>[K],
  ) {}
}

/**
 * A recomputable stretch of the forward pass (e.g. one transformer block): the nodes built
 * between `from` (inclusive) and `to` (exclusive) whose values depend on `input`. With
 * activation recomputation on, autodiff rebuilds those nodes from `input` just before the
 * segment's backward instead of keeping their outputs alive from the forward pass.
 */
export interface Segment {
  input: Value;
  from: number;
  to: number;
}

export interface GraphOutput {
  name: string;
  value: Value;
}

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: GraphOutput[] = [];
  readonly constants: Value[] = [];
  /** Recomputable segments, in build order (see Segment). */
  readonly segments: Segment[] = [];
  /** outer value → the capture value standing for it in this graph */
  readonly captures = new Map<Value, Value>();
  private counter: { next: number };

  constructor(
    readonly name = "graph",
    readonly parent?: Graph,
  ) {
    // Subgraphs share the root's id counter so value ids (and hence ONNX names) never collide
    // between a loop body and the graph around it.
    this.counter = parent ? parent.counter : { next: 0 };
  }

  nextId(): number {
    return this.counter.next++;
  }

  /** True when `g` is this graph or one of its ancestors. */
  isSelfOrAncestor(g: Graph): boolean {
    for (let cur: Graph | undefined = this; cur; cur = cur.parent) if (cur === g) return true;
    return false;
  }

  /** All values that flow in this graph (inputs, constants, captures, node outputs). */
  *values(): Iterable<Value> {
    yield* this.inputs;
    yield* this.constants;
    yield* this.captures.values();
    for (const n of this.nodes) yield* n.outputs;
  }
}
