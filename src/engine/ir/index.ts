export { GraphBuilder, type LoopBodyResult, type Operand } from "./builder.ts";
export { allocData, DTYPES, type DType, isFloatDType, type TensorData, type TypedArrayFor } from "./dtype.ts";
export { dumpGraph } from "./dump.ts";
export { Graph, type GraphOutput, Node, Value, type ValueKind } from "./graph.ts";
export { OPS, type OpAttrs, type OpDef, type OpName, type TensorType } from "./ops.ts";
export * from "./shape.ts";
