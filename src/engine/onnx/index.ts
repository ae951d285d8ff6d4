export { LOWERINGS } from "./lower.ts";
export { ONNX_DTYPE, onnx } from "./proto.ts";
export {
  IR_VERSION,
  type LowerContext,
  MS_DOMAIN,
  OPSET,
  type SerializeOptions,
  toOnnxModel,
} from "./serialize.ts";
