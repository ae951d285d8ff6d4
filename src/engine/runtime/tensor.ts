/**
 * Host tensors: a dtype, a static shape and a typed array — what the engine hands to and gets
 * back from ONNX Runtime. Conversions are zero-copy in both directions.
 */
import * as ort from "onnxruntime-node";
import type { DType, TypedArrayFor } from "../ir/dtype.ts";

export interface HostTensor<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: TypedArrayFor[D];
}

export function hostTensor<D extends DType>(
  dtype: D,
  shape: number[],
  data: TypedArrayFor[D],
): HostTensor<D> {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n)
    throw new Error(`tensor data has ${data.length} elements, shape [${shape}] needs ${n}`);
  return { dtype, shape, data };
}

export function f32(
  shape: number[],
  data: Float32Array | number[] = new Float32Array(shape.reduce((a, b) => a * b, 1)),
) {
  return hostTensor("float32", shape, data instanceof Float32Array ? data : Float32Array.from(data));
}

export function toOrt(t: HostTensor): ort.Tensor {
  return new ort.Tensor(t.dtype, t.data, t.shape);
}

export function fromOrt(t: ort.Tensor): HostTensor {
  const dtype = t.type as DType;
  if (!["float32", "float64", "int64", "bool"].includes(dtype))
    throw new Error(`unsupported output dtype ${t.type}`);
  return { dtype, shape: [...t.dims], data: t.data as HostTensor["data"] };
}
