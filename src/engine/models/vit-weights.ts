/**
 * A ViT's config read back from its weights' names and shapes (timm names, see vit.ts): width,
 * channels and patch from patch_embed, image size from pos_embed, depth from the blocks, MLP
 * ratio from fc1, qkv bias from its presence, classes from the head. Heads cannot be read from
 * shapes (qkv is [3D, D] whatever the split), so the caller passes them.
 *
 * Works from a name → shape map so that every weights format (safetensors, ONNX initializers)
 * shares it; `configFromWeights` is the safetensors shorthand.
 */
import { CheckpointError } from "../checkpoint/checkpoint.ts";
import { openSafetensors } from "../checkpoint/safetensors.ts";
import { VIT_DEFAULTS, type VitConfig, validateVitConfig } from "./vit.ts";

export type ShapeMap = ReadonlyMap<string, readonly number[]>;

const BLOCK_NAME = /^blocks\.(\d+)\./;

/** Block indices present in the names, sorted (e.g. [0, 1, …, 11]). */
export function blockIndices(names: Iterable<string>): number[] {
  const found = new Set<number>();
  for (const name of names) {
    const m = BLOCK_NAME.exec(name);
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * The ViT `shapes` describe. `where` (a file name) starts every error message. Only the tensors
 * the config is read from are looked at; checking every tensor is the caller's job (compare
 * against `vitParamSpecs(cfg)`), so that one message can list all problems. A feature
 * extractor saved without a head (timm's num_classes=0) needs `numClassesIfHeadless`.
 */
export function configFromShapes(
  shapes: ShapeMap,
  heads: number,
  where: string,
  opts: { numClassesIfHeadless?: number } = {},
): VitConfig {
  const fail = (msg: string) => new CheckpointError(`${where}: ${msg}`);
  const dims = (name: string, rank: number): number[] => {
    const shape = shapes.get(name);
    if (!shape) throw fail(`no tensor "${name}" (expected timm ViT names, e.g. "patch_embed.proj.weight")`);
    if (shape.length !== rank)
      throw fail(`"${name}" has shape [${shape.join(", ")}], expected ${rank} dimensions`);
    return [...shape];
  };
  const [width, channels, patchSize, patchWidth] = dims("patch_embed.proj.weight", 4) as [
    number,
    number,
    number,
    number,
  ];
  if (patchSize !== patchWidth)
    throw fail(
      `patch_embed.proj.weight has a ${patchSize}×${patchWidth} kernel; only square patches are supported`,
    );
  const tokens = dims("pos_embed", 3)[1]!;
  const grid = Math.round(Math.sqrt(tokens - 1));
  if (grid * grid !== tokens - 1)
    throw fail(
      `pos_embed has ${tokens} tokens, not 1 class token + a square grid of patches (extra tokens such as a distillation token are not supported)`,
    );
  const depth = blockIndices(shapes.keys());
  if (depth.length === 0) throw fail(`no "blocks.<i>.*" tensors: a ViT needs at least one block`);
  const gap = depth.findIndex((b, i) => b !== i);
  if (gap >= 0)
    throw fail(
      `block indices must run 0…${depth.length - 1} without gaps, found blocks.${depth[gap]} where blocks.${gap} was expected`,
    );
  const hidden = dims("blocks.0.mlp.fc1.weight", 2)[0]!;
  return validateVitConfig({
    ...VIT_DEFAULTS,
    imageSize: grid * patchSize,
    channels,
    patchSize,
    width,
    depth: depth.length,
    heads,
    mlpRatio: hidden / width,
    qkvBias: shapes.has("blocks.0.attn.qkv.bias"),
    numClasses:
      !shapes.has("head.weight") && opts.numClassesIfHeadless !== undefined
        ? opts.numClassesIfHeadless
        : dims("head.weight", 2)[0]!,
  });
}

/** Name → shape of every tensor in a safetensors file (reads the header only). */
export function safetensorsShapes(path: string): Map<string, number[]> {
  const file = openSafetensors(path);
  try {
    return new Map(file.names.map((name) => [name, file.info(name).shape]));
  } finally {
    file.close();
  }
}

/** The ViT a safetensors file with timm names describes. */
export function configFromWeights(path: string, heads: number): VitConfig {
  return configFromShapes(safetensorsShapes(path), heads, path);
}
