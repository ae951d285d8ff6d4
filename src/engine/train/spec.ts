/**
 * What a model author provides to get a compiled training step: parameter specs, the batch
 * inputs, and a forward function that builds loss and metrics from named parameters and inputs.
 */
import type { GraphBuilder } from "../ir/builder.ts";
import type { DType } from "../ir/dtype.ts";
import type { Value } from "../ir/graph.ts";
import type { OptimizerConfig } from "../optim/types.ts";
import type { ParamSpec } from "./params.ts";

export interface InputSpec {
  name: string;
  dtype: DType;
  /** static in train graphs; eval graphs may use a symbolic batch dim such as "N" */
  shape: (number | string)[];
}

export interface ForwardContext {
  b: GraphBuilder;
  /** false in eval graphs: drop-path and dropout should be off */
  training: boolean;
  /** a parameter as a tensor of its shape (a slice of the flat buffers) */
  param(name: string): Value;
  /** a batch input (images, labels, random masks, …) */
  input(name: string): Value;
}

export interface ForwardResult {
  /** scalar training objective */
  loss: Value;
  /** scalar metrics reported per step (e.g. accuracy) */
  metrics?: Record<string, Value>;
  /** extra tensors returned by eval graphs (e.g. logits) */
  outputs?: Record<string, Value>;
}

export type ForwardFn = (ctx: ForwardContext) => ForwardResult;

export interface TrainSpec {
  params: ParamSpec[];
  /** inputs of a training step (batch tensors and any random tensors such as drop masks) */
  inputs: InputSpec[];
  /** inputs of the eval graph (default: `inputs`) */
  evalInputs?: InputSpec[];
  forward: ForwardFn;
  optimizer: OptimizerConfig;
  /** global-norm gradient clipping (torch clip_grad_norm_); off when undefined */
  clipGradNorm?: number;
  /**
   * Activation recomputation: the backward pass rebuilds each segment the forward marked
   * (GraphBuilder.segment — a ViT's blocks) from the segment's input instead of keeping its
   * activations alive from the forward pass. Less peak memory for one more forward pass.
   */
  recomputeActivations?: boolean;
  /**
   * JSON data that, with params, inputs, optimizer, clipping and recomputation, determines every node `forward`
   * builds (e.g. a model config and forward plan). Only a spec with one can be cached on disk
   * (train/graph-cache.ts); leave it out when the closure reads anything else.
   */
  graphKey?: unknown;
}

/** Graph input/output names of compiled steps. */
export const NAMES = {
  params: "params",
  frozen: "frozen",
  step: "step",
  lr: "lr",
  state: (slot: string) => `state.${slot}`,
  loss: "loss",
  gradNorm: "grad_norm",
  metric: (k: string) => `metric.${k}`,
  output: (k: string) => `output.${k}`,
  next: (name: string) => `${name}.next`,
} as const;

export const RESERVED_INPUTS = new Set(["params", "frozen", "step", "lr"]);
