/**
 * Optimizer configurations. Every optimizer is graph code: it reads the flat parameter vector,
 * the flat gradient and its flat state slots, and returns their next values inside the same
 * ONNX step graph. Hyper-parameters are baked into the graph; the learning rate and the step
 * number are graph inputs so schedules need no recompilation.
 */
export interface AdamWConfig {
  kind: "adamw";
  beta1?: number; // 0.9
  beta2?: number; // 0.999
  eps?: number; // 1e-8
  weightDecay?: number; // 0.05 (DeiT); applied to the decay group only
}

export interface LambConfig {
  kind: "lamb";
  beta1?: number; // 0.9
  beta2?: number; // 0.999
  eps?: number; // 1e-6 (timm)
  weightDecay?: number; // 0.01
  /** timm's built-in global-norm clip before the update (default 1.0; 0 disables) */
  maxGradNorm?: number;
  /** clamp the trust ratio to ≤ 1 (timm `trust_clip`, default false) */
  trustClip?: boolean;
  /** apply the trust ratio to no-decay params too (timm `always_adapt`, default false) */
  alwaysAdapt?: boolean;
}

export interface SgdConfig {
  kind: "sgd";
  momentum?: number; // 0.9
  nesterov?: boolean; // false
  /** L2 (coupled) weight decay on the decay group, torch.optim.SGD semantics */
  weightDecay?: number; // 0
}

export type OptimizerConfig = AdamWConfig | LambConfig | SgdConfig;

/** Names of the per-element state slots each optimizer keeps (each one flat buffer). */
export function stateSlots(cfg: OptimizerConfig): string[] {
  switch (cfg.kind) {
    case "adamw":
    case "lamb":
      return ["exp_avg", "exp_avg_sq"];
    case "sgd":
      return (cfg.momentum ?? 0.9) > 0 ? ["momentum_buffer"] : [];
  }
}
