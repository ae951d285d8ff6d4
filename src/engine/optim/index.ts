import { adamwUpdate } from "./adamw.ts";
import type { UpdateInputs, UpdateResult } from "./flat.ts";
import { lambUpdate } from "./lamb.ts";
import { sgdUpdate } from "./sgd.ts";
import type { OptimizerConfig } from "./types.ts";

export { adamwUpdate } from "./adamw.ts";
export { clipByGlobalNorm, globalNorm } from "./clip.ts";
export { segmentIds, segmentNorms, type UpdateInputs, type UpdateResult } from "./flat.ts";
export { lambUpdate } from "./lamb.ts";
export { sgdUpdate } from "./sgd.ts";
export {
  type AdamWConfig,
  type LambConfig,
  type OptimizerConfig,
  type SgdConfig,
  stateSlots,
} from "./types.ts";

/** Build the optimizer's update of the flat parameters and state into the step graph. */
export function applyOptimizer(cfg: OptimizerConfig, inputs: UpdateInputs): UpdateResult {
  switch (cfg.kind) {
    case "adamw":
      return adamwUpdate(cfg, inputs);
    case "lamb":
      return lambUpdate(cfg, inputs);
    case "sgd":
      return sgdUpdate(cfg, inputs);
  }
}
