export { sampleBeta, sampleGamma } from "./beta.ts";
export * as ops from "./color.ts";
export { type RandomErasingOptions, randomErasing } from "./erase.ts";
export {
  affine,
  horizontalFlip,
  paddedRandomCrop,
  randomResizedCrop,
  resize,
  rotate,
  sampleResizedCropBox,
} from "./geometric.ts";
export { type Image, toImage } from "./image.ts";
export { type MixOptions, type MixResult, mixBatch, mixTargets } from "./mix.ts";
export { channelStats, normalizeInPlace } from "./normalize.ts";
export {
  type AugmentConfig,
  augmentConfigSchema,
  type BuiltTransform,
  buildTransform,
  parseAugmentConfig,
  type SampleTransform,
} from "./pipeline.ts";
export { RAND_AUGMENT_OPS, type RandAugmentOptions, randAugment } from "./randaugment.ts";
export { colorJitterOp, threeAugment } from "./three-augment.ts";
