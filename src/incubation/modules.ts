/**
 * How a target ViT is divided into K modules, and which parameters each module owns.
 *
 * Module 0 owns the patch embedding, class token and position embedding; module K−1 owns the
 * final norm and the head; every module owns a contiguous run of blocks. The union of the
 * modules' parameters is exactly the target's, each parameter owned once — assembly relies on it.
 */

import {
  blockParamSpecs,
  embedParamSpecs,
  headParamSpecs,
  type VitConfig,
  validateVitConfig,
} from "../engine/models/vit.ts";
import type { ParamSpec } from "../engine/train/params.ts";

export interface ModuleRange {
  index: number;
  /** First target block of the module. */
  start: number;
  /** One past its last block. */
  end: number;
}

/**
 * Blocks per module: an explicit list (must sum to depth, each ≥ 1), or K near-equal modules
 * with the extra blocks given to the outer modules first (14 blocks, K=4 → 4,3,3,4), as the
 * paper's uneven splits do — the outer modules also carry the embedding and the head.
 */
export function resolveSplit(depth: number, split: number | readonly number[] = 4): number[] {
  if (typeof split === "number") {
    const k = split;
    if (!Number.isInteger(k) || k < 1) throw new Error(`modules must be a positive integer, got ${k}`);
    if (k > depth)
      throw new Error(`modules (${k}) cannot exceed depth (${depth}): each module needs ≥ 1 block`);
    const sizes = Array<number>(k).fill(Math.floor(depth / k));
    let extra = depth % k;
    for (let step = 0; extra > 0; step++) {
      const at = step % 2 === 0 ? Math.floor(step / 2) : k - 1 - Math.floor(step / 2);
      sizes[at]! += 1;
      extra--;
    }
    return sizes;
  }
  if (split.length === 0) throw new Error("moduleSplit must list at least one module");
  split.forEach((n, i) => {
    if (!Number.isInteger(n) || n < 1) throw new Error(`moduleSplit[${i}] must be ≥ 1 block, got ${n}`);
  });
  const sum = split.reduce((a, b) => a + b, 0);
  if (sum !== depth) {
    throw new Error(`moduleSplit [${split.join(",")}] sums to ${sum} but the model has depth ${depth}`);
  }
  return [...split];
}

export function moduleRanges(split: readonly number[]): ModuleRange[] {
  let start = 0;
  return split.map((n, index) => {
    const range = { index, start, end: start + n };
    start += n;
    return range;
  });
}

/** Parameters module `index` owns in the target, under the target's timm names. */
export function moduleParamSpecs(cfg: VitConfig, split: readonly number[], index: number): ParamSpec[] {
  const range = moduleRanges(split)[index];
  if (!range) throw new Error(`module index ${index} is out of range for ${split.length} modules`);
  const specs: ParamSpec[] = [];
  if (index === 0) specs.push(...embedParamSpecs(cfg));
  for (let b = range.start; b < range.end; b++) specs.push(...blockParamSpecs(cfg, b));
  if (index === split.length - 1) specs.push(...headParamSpecs(cfg));
  return specs;
}

/** What a meta model may change from the target's architecture (the rest must match). */
export type MetaOverrides = Partial<Pick<VitConfig, "width" | "mlpRatio">>;

/**
 * The meta model for a target: the target's heads, patch, image size and classes with one block
 * per module; by default its width too — another width is served through width adapters.
 */
export function metaConfigFor(
  target: VitConfig,
  numModules: number,
  overrides: MetaOverrides = {},
): VitConfig {
  return validateVitConfig({ ...target, ...overrides, depth: numModules });
}
