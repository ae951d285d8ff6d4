/**
 * The training engine: graph IR, autodiff, ONNX serialisation, ORT runtime, optimizers and the
 * train-step compiler. See each folder's modules for details.
 */
export * from "./autodiff/index.ts";
export * from "./checkpoint/index.ts";
export * from "./export/index.ts";
export * from "./ir/index.ts";
export * from "./onnx/index.ts";
export * from "./optim/index.ts";
export { Rng, type RngState } from "./rng.ts";
export * from "./runtime/index.ts";
export * from "./train/index.ts";
