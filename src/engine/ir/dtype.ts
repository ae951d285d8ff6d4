/**
 * Element types the engine's graphs use. Kept deliberately small: float32 is the training type,
 * float64 exists so gradient checks can run at double precision, int64 carries labels and
 * indices, bool carries masks and comparison results.
 */
export type DType = "float32" | "float64" | "int64" | "bool";

export const DTYPES: readonly DType[] = ["float32", "float64", "int64", "bool"];

/** The typed array that holds a tensor of each dtype (bool is one byte per element, 0 or 1). */
export interface TypedArrayFor {
  float32: Float32Array;
  float64: Float64Array;
  int64: BigInt64Array;
  bool: Uint8Array;
}
export type TensorData = TypedArrayFor[DType];

export function isFloatDType(d: DType): d is "float32" | "float64" {
  return d === "float32" || d === "float64";
}

/** Allocate a zero-filled typed array of `n` elements for `dtype`. */
export function allocData<D extends DType>(dtype: D, n: number): TypedArrayFor[D] {
  switch (dtype) {
    case "float32":
      return new Float32Array(n) as TypedArrayFor[D];
    case "float64":
      return new Float64Array(n) as TypedArrayFor[D];
    case "int64":
      return new BigInt64Array(n) as TypedArrayFor[D];
    case "bool":
      return new Uint8Array(n) as TypedArrayFor[D];
  }
  throw new Error(`unknown dtype ${String(dtype)}`);
}

/** Which dtype a typed array stores (Uint8Array is read as bool). */
export function dtypeOfData(data: TensorData): DType {
  if (data instanceof Float32Array) return "float32";
  if (data instanceof Float64Array) return "float64";
  if (data instanceof BigInt64Array) return "int64";
  return "bool";
}
