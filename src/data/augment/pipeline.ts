/**
 * The per-image training / eval transform, built from a validated config:
 *   crop (random-resized | padded | none → resize) → horizontal flip → RandAugment →
 *   ThreeAugment → normalise → random erasing
 * which is timm's `create_transform` order (erasing works on normalised values). Batch-level
 * Mixup / CutMix live in mix.ts and are applied by the loader.
 */
import { z } from "zod";
import type { Rng } from "../../engine/rng.ts";
import { DataError } from "../errors.ts";
import { randomErasing } from "./erase.ts";
import { horizontalFlip, paddedRandomCrop, randomResizedCrop, resize } from "./geometric.ts";
import { toImage } from "./image.ts";
import { normalizeInPlace } from "./normalize.ts";
import { randAugment } from "./randaugment.ts";
import { threeAugment } from "./three-augment.ts";

const range = (lo: number, hi: number) =>
  z
    .tuple([z.number().min(lo).max(hi), z.number().min(lo).max(hi)])
    .refine(([a, b]) => a <= b, { message: "range must be [low, high] with low ≤ high" });

export const augmentConfigSchema = z
  .object({
    /** Output size; default: the dataset's size. */
    outputSize: z
      .union([z.number().int().min(1), z.tuple([z.number().int().min(1), z.number().int().min(1)])])
      .optional(),
    crop: z
      .discriminatedUnion("kind", [
        z.object({ kind: z.literal("none") }).strict(),
        z
          .object({
            kind: z.literal("random-resized"),
            scale: range(0, 1).default([0.08, 1]),
            ratio: range(0.01, 100).default([3 / 4, 4 / 3]),
          })
          .strict(),
        z
          .object({
            kind: z.literal("padded"),
            padding: z.number().int().min(0).default(4),
            /** torchvision's RandomCrop(padding=p) fills with zeros; DeiT-III's simple crop reflects. */
            mode: z.enum(["zero", "reflect"]).default("zero"),
          })
          .strict(),
      ])
      .default({ kind: "none" }),
    /** Probability of a horizontal flip (0.5 for natural images; 0 for digits/text). */
    hflip: z.number().min(0).max(1).default(0),
    randAugment: z
      .object({
        ops: z.number().int().min(1).max(10).default(2),
        magnitude: z.number().min(0).max(10).default(9),
        magnitudeStd: z.number().min(0).default(0.5),
        prob: z.number().min(0).max(1).default(0.5),
      })
      .strict()
      .optional(),
    threeAugment: z
      .object({ colorJitter: z.number().min(0).max(1).default(0.3) })
      .strict()
      .optional(),
    /**
     * Per-channel mean and std on the 0..1 scale (one value broadcasts). Default 0.5 / 0.5; a
     * training job gives its dataset format's constants when the recipe sets none
     * (data/normalization.ts), and evaluates with the same.
     */
    normalize: z
      .object({ mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) })
      .strict()
      .default({ mean: [0.5], std: [0.5] }),
    randomErasing: z
      .object({
        prob: z.number().min(0).max(1).default(0.25),
        area: range(0, 1).default([0.02, 1 / 3]),
        aspect: range(0.01, 100).default([0.3, 1 / 0.3]),
        mode: z.enum(["pixel", "channel", "const"]).default("pixel"),
      })
      .strict()
      .optional(),
  })
  .strict();

export type AugmentConfig = z.input<typeof augmentConfigSchema>;
export type ParsedAugmentConfig = z.output<typeof augmentConfigSchema>;

export interface InputShape {
  channels: number;
  height: number;
  width: number;
}

/** Maps one dataset record to a normalised CHW float image of the output size. */
export type SampleTransform = (src: Uint8Array | Float32Array, rng: Rng) => Float32Array;

export interface BuiltTransform {
  apply: SampleTransform;
  channels: number;
  height: number;
  width: number;
  config: ParsedAugmentConfig;
}

export function parseAugmentConfig(config: unknown): ParsedAugmentConfig {
  const result = augmentConfigSchema.safeParse(config ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `  field "${i.path.join(".") || "(config)"}": ${i.message}`);
  throw new DataError(`invalid augmentation config:\n${lines.join("\n")}`, { source: "augment config" });
}

export function buildTransform(config: unknown, input: InputShape): BuiltTransform {
  const cfg = parseAugmentConfig(config);
  const { channels } = input;
  const [height, width] =
    cfg.outputSize === undefined
      ? [input.height, input.width]
      : typeof cfg.outputSize === "number"
        ? [cfg.outputSize, cfg.outputSize]
        : cfg.outputSize;
  const { mean, std } = cfg.normalize;
  for (const [name, v] of [
    ["mean", mean],
    ["std", std],
  ] as const) {
    if (v.length !== 1 && v.length !== channels) {
      throw new DataError(
        `normalize.${name} has ${v.length} values but the images have ${channels} channel(s); give one value or ${channels}`,
        { source: "augment config" },
      );
    }
  }
  if (cfg.crop.kind === "padded" && (cfg.crop.padding >= input.height || cfg.crop.padding >= input.width)) {
    throw new DataError(
      `crop.padding ${cfg.crop.padding} must be smaller than the image (${input.height}×${input.width})`,
      {
        source: "augment config",
      },
    );
  }
  // Geometric RandAugment ops fill uncovered pixels with the dataset mean (timm's img_mean).
  const fill = Array.from({ length: channels }, (_, c) => (mean.length === 1 ? mean[0]! : mean[c]!));
  const crop = cfg.crop;

  const apply: SampleTransform = (src, rng) => {
    let img = toImage(src, input.channels, input.height, input.width);
    if (crop.kind === "random-resized") {
      img = randomResizedCrop(img, rng, { height, width, scale: crop.scale, ratio: crop.ratio });
    } else {
      if (crop.kind === "padded") img = paddedRandomCrop(img, rng, crop.padding, crop.mode);
      img = resize(img, height, width);
    }
    if (cfg.hflip > 0 && rng.uniform() < cfg.hflip) img = horizontalFlip(img);
    if (cfg.randAugment) img = randAugment(img, rng, { ...cfg.randAugment, fill });
    if (cfg.threeAugment) img = threeAugment(img, rng, cfg.threeAugment.colorJitter);
    // toImage and every op return a fresh buffer, so normalising in place never touches the dataset.
    normalizeInPlace(img, mean, std);
    if (cfg.randomErasing) randomErasing(img, rng, cfg.randomErasing);
    return img.data;
  };
  return { apply, channels, height, width, config: cfg };
}
