/**
 * The hybrid network of modular training (MT) job i: the meta model with its stage i replaced
 * by target module i.
 *
 *   stage:     0        1        …   i (target)          …   K−1
 *   embed:     target's own when i = 0, else the meta model's (frozen)
 *   blocks:    meta.blocks.0 … target blocks.[start,end) … meta.blocks.K−1
 *   head:      target's own when i = K−1, else the meta model's (frozen)
 *
 * Only module i's parameters are trainable (they keep the target's timm names, so assembly is
 * a plain copy); meta parameters are frozen under the prefix "meta." — they get no gradient and
 * no optimizer state, but the loss gradient flows *through* the meta blocks after slot i to
 * reach module i. Stochastic depth is a linspace over the hybrid's own depth and stays active
 * in the frozen meta blocks, as in the official code.
 */
import type { ClassifierOptions } from "../engine/models/classifier.ts";
import {
  blockParamSpecs,
  embedParamSpecs,
  type ForwardPlan,
  headParamSpecs,
  type VitConfig,
} from "../engine/models/vit.ts";
import type { ParamSpec } from "../engine/train/params.ts";
import { moduleParamSpecs, moduleRanges } from "./modules.ts";

export const META_PREFIX = "meta.";

export interface Hybrid {
  /** Trainable target-module parameters first, then the frozen meta parameters. */
  params: ParamSpec[];
  plan: ForwardPlan;
  /** Number of blocks the hybrid runs: (K−1) meta blocks + module i's blocks. */
  depth: number;
  /** Frozen meta parameter names → the meta checkpoint's own names. */
  metaNames: Map<string, string>;
}

/** Names of the meta model's parameters a hybrid for module `index` reads, unprefixed. */
function metaStageSpecs(meta: VitConfig, numModules: number, index: number): ParamSpec[] {
  const specs: ParamSpec[] = [];
  if (index !== 0) specs.push(...embedParamSpecs(meta));
  for (let j = 0; j < numModules; j++) if (j !== index) specs.push(...blockParamSpecs(meta, j));
  if (index !== numModules - 1) specs.push(...headParamSpecs(meta));
  return specs;
}

export function buildHybrid(
  target: VitConfig,
  meta: VitConfig,
  split: readonly number[],
  index: number,
): Hybrid {
  const k = split.length;
  if (meta.depth !== k) {
    throw new Error(
      `meta model has ${meta.depth} blocks but the target is split into ${k} modules; they must match`,
    );
  }
  for (const field of ["heads", "patchSize", "imageSize", "channels", "numClasses"] as const) {
    if (meta[field] !== target[field]) {
      throw new Error(`meta model ${field} (${meta[field]}) differs from the target's (${target[field]})`);
    }
  }
  if (meta.width !== target.width) {
    throw new Error(
      `meta model width (${meta.width}) differs from the target's (${target.width}); width adapters are needed`,
    );
  }
  const range = moduleRanges(split)[index];
  if (!range) throw new Error(`module index ${index} is out of range for ${k} modules`);

  const trainable = moduleParamSpecs(target, split, index);
  const metaNames = new Map<string, string>();
  const frozen = metaStageSpecs(meta, k, index).map((spec) => {
    const name = META_PREFIX + spec.name;
    metaNames.set(name, spec.name);
    return { ...spec, name, trainable: false };
  });

  const blocks: string[] = [];
  for (let j = 0; j < k; j++) {
    if (j === index) for (let b = range.start; b < range.end; b++) blocks.push(`blocks.${b}`);
    else blocks.push(`${META_PREFIX}blocks.${j}`);
  }
  return {
    params: [...trainable, ...frozen],
    plan: {
      embedPrefix: index === 0 ? "" : META_PREFIX,
      blocks,
      headPrefix: index === k - 1 ? "" : META_PREFIX,
    },
    depth: blocks.length,
    metaNames,
  };
}

/** Classifier options for the hybrid (merge with the batch, optimizer and loss options). */
export function hybridClassifierOptions(hybrid: Hybrid): Pick<ClassifierOptions, "params" | "plan"> {
  return { params: hybrid.params, plan: hybrid.plan };
}

/** The meta checkpoint's tensors renamed for the hybrid's frozen parameters. */
export function hybridInitialValues(
  hybrid: Hybrid,
  metaParameters: ReadonlyMap<string, Float32Array>,
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [hybridName, metaName] of hybrid.metaNames) {
    const value = metaParameters.get(metaName);
    if (!value) throw new Error(`meta checkpoint has no tensor "${metaName}" (needed for ${hybridName})`);
    out.set(hybridName, value);
  }
  return out;
}
