/**
 * Pre-trained ViT checkpoints as timm writes them (its parameter names, one safetensors file),
 * with random values of their own so that a copied tensor can be told from any other.
 */
import { type TensorInput, writeSafetensors } from "../../src/engine/checkpoint/safetensors.ts";
import { VIT_DEFAULTS, type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";

/** A small "pre-trained" ViT: depth 6, width 32, 4 heads, 16 px, patch 4, 10 classes. */
export const SOURCE_VIT: VitConfig = {
  ...VIT_DEFAULTS,
  imageSize: 16,
  patchSize: 4,
  width: 32,
  depth: 6,
  heads: 4,
  numClasses: 10,
};

export interface TimmTensor {
  data: Float32Array;
  shape: number[];
}

/** Every parameter of `cfg` under its timm name, normal(0, 0.02) values from `seed`. */
export function timmVitTensors(cfg: VitConfig = SOURCE_VIT, seed = 7): Map<string, TimmTensor> {
  const rng = new Rng(seed);
  return new Map(
    vitParamSpecs(cfg).map((s) => {
      const data = Float32Array.from(
        { length: s.shape.reduce((a, b) => a * b, 1) },
        () => 0.02 * rng.normal(),
      );
      return [s.name, { data, shape: [...s.shape] }];
    }),
  );
}

/** Writes tensors as a safetensors file, every name prefixed with `prefix` (e.g. "module."). */
export function writeTimmCheckpoint(
  path: string,
  tensors: ReadonlyMap<string, TimmTensor>,
  prefix = "",
): string {
  const out = new Map<string, TensorInput>();
  for (const [name, t] of tensors) out.set(prefix + name, t);
  writeSafetensors(path, out, { format: "pt" });
  return path;
}
