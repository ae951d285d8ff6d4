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
 *
 * Width adapters. When the meta model's width d_m differs from the target's d_t, module i is
 * wrapped in two trainable linear maps on every token: `adapters.in` (d_m → d_t) before it —
 * not for module 0, which owns the target's embedding — and `adapters.out` (d_t → d_m) after it
 * — not for module K−1, which owns the target's head. They train with the module and are not
 * target parameters, so assembly (which copies only the names module i owns) drops them.
 *
 * Their initialisation is the padded identity and its transpose: in = [I; 0] puts the meta
 * features in the first d_m coordinates of the target's stream, out = [I 0] reads them back.
 * For d_m ≤ d_t, out·in = I, so at step 0 the adapters lose nothing: target blocks start near the
 * identity (their residual branches are small), and the hybrid starts close to the meta model
 * with stage i bypassed — the same start as a same-width hybrid, which is what the frozen meta
 * stages after slot i were trained to read. For d_m > d_t the pair is a projection onto the first
 * d_t coordinates (the rest is lost until the adapters learn a better basis). Adapters take no
 * weight decay: they are a change of basis, and decaying them would shrink the meta signal.
 */
import type { ClassifierOptions } from "../engine/models/classifier.ts";
import {
  blockParamSpecs,
  embedParamSpecs,
  type ForwardPlan,
  headParamSpecs,
  type PlanWidths,
  type VitConfig,
} from "../engine/models/vit.ts";
import type { ParamSpec } from "../engine/train/params.ts";
import { moduleParamSpecs, moduleRanges } from "./modules.ts";

export const META_PREFIX = "meta.";

/** A width adapter a hybrid trains with module i (dropped at assembly). */
export interface WidthAdapter {
  /** Parameter prefix: `${name}.weight` [outWidth, inWidth], `${name}.bias` [outWidth]. */
  name: "adapters.in" | "adapters.out";
  inWidth: number;
  outWidth: number;
}

export interface Hybrid {
  /** Trainable target-module parameters first, then the frozen meta parameters. */
  params: ParamSpec[];
  plan: ForwardPlan;
  /** Number of blocks the hybrid runs: (K−1) meta blocks + module i's blocks. */
  depth: number;
  /** Frozen meta parameter names → the meta checkpoint's own names. */
  metaNames: Map<string, string>;
  /** Width adapters around module i (empty when the meta model has the target's width). */
  adapters: WidthAdapter[];
}

/** Names of the meta model's parameters a hybrid for module `index` reads, unprefixed. */
function metaStageSpecs(meta: VitConfig, numModules: number, index: number): ParamSpec[] {
  const specs: ParamSpec[] = [];
  if (index !== 0) specs.push(...embedParamSpecs(meta));
  for (let j = 0; j < numModules; j++) if (j !== index) specs.push(...blockParamSpecs(meta, j));
  if (index !== numModules - 1) specs.push(...headParamSpecs(meta));
  return specs;
}

/**
 * Why `meta` cannot incubate `target` split into `split.length` modules, one reason per line
 * (empty when it can). Widths may differ — width adapters join them.
 */
export function metaIncompatibility(target: VitConfig, meta: VitConfig, numModules: number): string[] {
  const reasons: string[] = [];
  if (meta.depth !== numModules) {
    reasons.push(
      `meta model has ${meta.depth} blocks but the target is split into ${numModules} modules; they must match`,
    );
  }
  for (const field of ["heads", "patchSize", "imageSize", "channels", "numClasses"] as const) {
    if (meta[field] !== target[field]) {
      reasons.push(`meta model ${field} (${meta[field]}) differs from the target's (${target[field]})`);
    }
  }
  return reasons;
}

/** The adapters module `index` trains with when the meta model's width differs from the target's. */
export function widthAdapters(target: VitConfig, meta: VitConfig, numModules: number, index: number) {
  const adapters: WidthAdapter[] = [];
  if (meta.width === target.width) return adapters;
  if (index > 0) adapters.push({ name: "adapters.in", inWidth: meta.width, outWidth: target.width });
  if (index < numModules - 1) {
    adapters.push({ name: "adapters.out", inWidth: target.width, outWidth: meta.width });
  }
  return adapters;
}

function adapterParamSpecs(adapter: WidthAdapter): ParamSpec[] {
  return [
    {
      name: `${adapter.name}.weight`,
      shape: [adapter.outWidth, adapter.inWidth],
      init: { kind: "eye" },
      decay: false,
    },
    { name: `${adapter.name}.bias`, shape: [adapter.outWidth], init: { kind: "zeros" }, decay: false },
  ];
}

export function buildHybrid(
  target: VitConfig,
  meta: VitConfig,
  split: readonly number[],
  index: number,
): Hybrid {
  const k = split.length;
  const reasons = metaIncompatibility(target, meta, k);
  if (reasons.length > 0) throw new Error(reasons.join("; "));
  const range = moduleRanges(split)[index];
  if (!range) throw new Error(`module index ${index} is out of range for ${k} modules`);

  const adapters = widthAdapters(target, meta, k, index);
  const trainable = [...moduleParamSpecs(target, split, index), ...adapters.flatMap(adapterParamSpecs)];
  const metaNames = new Map<string, string>();
  const frozen = metaStageSpecs(meta, k, index).map((spec) => {
    const name = META_PREFIX + spec.name;
    metaNames.set(name, spec.name);
    return { ...spec, name, trainable: false };
  });

  const blocks: string[] = [];
  const blockConfigs: VitConfig[] = [];
  let targetStart = 0;
  for (let j = 0; j < k; j++) {
    if (j === index) {
      targetStart = blocks.length;
      for (let b = range.start; b < range.end; b++) {
        blocks.push(`blocks.${b}`);
        blockConfigs.push(target);
      }
    } else {
      blocks.push(`${META_PREFIX}blocks.${j}`);
      blockConfigs.push(meta);
    }
  }
  // Every stage is built with its own config: besides the width, a meta model may differ from
  // the target in MLP ratio, qkv bias or LayerNorm epsilon (an imported one, say).
  const widths: PlanWidths = {
    embed: index === 0 ? target : meta,
    blocks: blockConfigs,
    head: index === k - 1 ? target : meta,
    adapters: adapters.map((a) => ({
      name: a.name,
      before: a.name === "adapters.in" ? targetStart : targetStart + range.end - range.start,
    })),
  };
  return {
    params: [...trainable, ...frozen],
    plan: {
      embedPrefix: index === 0 ? "" : META_PREFIX,
      blocks,
      headPrefix: index === k - 1 ? "" : META_PREFIX,
      widths,
    },
    depth: blocks.length,
    metaNames,
    adapters,
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
