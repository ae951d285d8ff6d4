/**
 * The contract between the lowerings (lower.ts) and the serialiser (serialize.ts), which
 * implements it. In its own file so that serialize.ts → lower.ts is the only import between
 * the two.
 */
import type { DType } from "../ir/dtype.ts";
import type { Graph, Value } from "../ir/graph.ts";
import type { Shape } from "../ir/shape.ts";
import type { AttributeProto, GraphProto } from "./proto.ts";

/** The ONNX domain of Microsoft's contrib ops (Gelu, FusedMatMul, …). */
export const MS_DOMAIN = "com.microsoft";

/** What a lowering sees: names of IR values, and helpers that emit ONNX nodes and constants. */
export interface LowerContext {
  readonly contribOps: boolean;
  /** skipLayerNorm → SkipLayerNormalization (implies contribOps) */
  readonly fusedSkipLayerNorm: boolean;
  /** geluGrad in nine elementwise passes instead of ten (float32; standard ops) */
  readonly compactGeluGrad: boolean;
  name(v: Value): string;
  /** Emit one ONNX node; returns its output names (fresh temporaries when `outputs` is a count). */
  emit(
    opType: string,
    inputs: string[],
    outputs: string[] | number,
    attrs?: AttributeProto[],
    domain?: string,
  ): string[];
  /** Shorthand for a single-output node. */
  op(opType: string, inputs: string[], attrs?: AttributeProto[], domain?: string): string;
  constInt64(values: readonly number[], scalar?: boolean): string;
  constScalar(x: number, dtype: DType): string;
  /** A 1-D int64 tensor holding `shape`, resolving symbolic dims at run time. */
  shapeTensor(shape: Shape): string;
  /** A Reshape target: -1 stands for a single symbolic dim (cheaper than reading shapes). */
  reshapeTarget(shape: Shape): string;
  subgraph(g: Graph): GraphProto;
}
