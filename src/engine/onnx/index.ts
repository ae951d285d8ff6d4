export { LOWERINGS } from "./lower.ts";
export { type LowerContext, MS_DOMAIN } from "./lower-context.ts";
export { ONNX_DTYPE, onnx } from "./proto.ts";
export { IR_VERSION, OPSET, type SerializeOptions, toOnnxModel } from "./serialize.ts";
