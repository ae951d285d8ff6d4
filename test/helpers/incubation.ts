/** A target ViT small enough for exact checks in milliseconds, split unevenly into 4 modules. */
import { VIT_DEFAULTS, type VitConfig } from "../../src/engine/models/vit.ts";

export const SMALL_TARGET: VitConfig = {
  ...VIT_DEFAULTS,
  imageSize: 8,
  patchSize: 4,
  width: 16,
  depth: 6,
  heads: 2,
  numClasses: 5,
};
export const SMALL_SPLIT = [2, 1, 1, 2];
