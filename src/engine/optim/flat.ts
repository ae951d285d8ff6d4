/**
 * Helpers for elementwise work on the flat trainable vector whose first `decaySize` elements
 * are the weight-decay group (see train/params.ts), and for per-parameter (segment) reductions.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";

export interface UpdateInputs {
  b: GraphBuilder;
  /** flat trainable parameters [P] */
  param: Value;
  /** flat gradient [P] */
  grad: Value;
  /** optimizer state slots, each [P], in `stateSlots(cfg)` order */
  state: Value[];
  /** 1-based number of this update, int64 scalar */
  step: Value;
  /** learning rate, float32 scalar */
  lr: Value;
  /** number of leading elements in the weight-decay group */
  decaySize: number;
  /** sizes of the trainable parameters in flat order (for per-parameter norms) */
  segmentSizes: number[];
}

export interface UpdateResult {
  param: Value;
  state: Value[];
}

/** Apply `f` to the decay group [0, D) and leave the rest unchanged. */
export function onDecayGroup(b: GraphBuilder, x: Value, decaySize: number, f: (head: Value) => Value): Value {
  const total = x.shape[0] as number;
  if (decaySize === 0) return x;
  if (decaySize === total) return f(x);
  return b.concat([f(b.slice(x, 0, 0, decaySize)), b.slice(x, 0, decaySize, total)], 0);
}

/** Like onDecayGroup, for a binary elementwise op on two flat vectors. */
export function onDecayGroup2(
  b: GraphBuilder,
  x: Value,
  y: Value,
  decaySize: number,
  f: (xHead: Value, yHead: Value) => Value,
): Value {
  const total = x.shape[0] as number;
  if (decaySize === 0) return x;
  if (decaySize === total) return f(x, y);
  return b.concat(
    [f(b.slice(x, 0, 0, decaySize), b.slice(y, 0, 0, decaySize)), b.slice(x, 0, decaySize, total)],
    0,
  );
}

/** β^t for the bias corrections, with t the int64 step. */
export function powStep(b: GraphBuilder, beta: number, step: Value): Value {
  return b.pow(b.scalar(beta, "float32"), b.cast(step, "float32"));
}

/**
 * Segment id of every flat element (0 for the first parameter, 1 for the next, …), computed in
 * the graph from the segment sizes: ones scattered at segment starts, then a cumulative sum. This
 * keeps a [P] int64 constant out of the model file.
 */
export function segmentIds(b: GraphBuilder, sizes: number[]): Value {
  const total = sizes.reduce((a, s) => a + s, 0);
  if (sizes.length === 1) return b.zeros([total], "int64");
  const starts: number[] = [];
  let offset = 0;
  for (const s of sizes.slice(0, -1)) {
    offset += s;
    starts.push(offset);
  }
  const marks = b.indexAdd(b.zeros([total], "int64"), b.int64s(starts), b.full([starts.length], 1, "int64"));
  return b.cumSum(marks, 0);
}

/** Per-segment L2 norms [K] of a flat vector. */
export function segmentNorms(b: GraphBuilder, x: Value, ids: Value, segments: number): Value {
  return b.sqrt(b.indexAdd(b.zeros([segments], x.dtype), ids, b.mul(x, x)));
}
