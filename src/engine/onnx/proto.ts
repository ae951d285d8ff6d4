/**
 * Thin helpers over the `onnx-proto` protobuf classes (IR 8 schema, protobufjs). ONNX Runtime
 * accepts newer IR/opset numbers set as plain integers, so the older schema is no limitation.
 */
import onnxProto from "onnx-proto";
import type { DType, TensorData } from "../ir/dtype.ts";
import type { Dim } from "../ir/shape.ts";

export const { onnx } = onnxProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type GraphProto = onnxProto.onnx.IGraphProto;

const AttrType = onnx.AttributeProto.AttributeType;

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = { float32: 1, int64: 7, bool: 9, float64: 11 };

export const attr = {
  int: (name: string, i: number): AttributeProto => ({ name, type: AttrType.INT, i }),
  float: (name: string, f: number): AttributeProto => ({ name, type: AttrType.FLOAT, f }),
  ints: (name: string, ints: readonly number[]): AttributeProto => ({
    name,
    type: AttrType.INTS,
    ints: [...ints],
  }),
  string: (name: string, s: string): AttributeProto => ({
    name,
    type: AttrType.STRING,
    s: new TextEncoder().encode(s),
  }),
  tensor: (name: string, t: TensorProto): AttributeProto => ({ name, type: AttrType.TENSOR, t }),
  graph: (name: string, g: GraphProto): AttributeProto => ({ name, type: AttrType.GRAPH, g }),
};

export function tensorProto(
  name: string,
  dtype: DType,
  dims: readonly number[],
  data: TensorData,
): TensorProto {
  return {
    name,
    dataType: ONNX_DTYPE[dtype],
    dims: [...dims],
    rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  };
}

export function valueInfo(name: string, dtype: DType, shape: readonly Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[dtype],
        shape: { dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export function encodeModel(
  graph: GraphProto,
  opsets: { domain: string; version: number }[],
  irVersion: number,
) {
  const model = onnx.ModelProto.create({
    irVersion,
    producerName: "incubator",
    opsetImport: opsets,
    graph: onnx.GraphProto.create(graph),
  });
  return onnx.ModelProto.encode(model).finish();
}
