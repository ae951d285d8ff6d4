/** Random images and labels for a ViT classifier: what the memory benches feed a training step. */
import type { VitConfig } from "../src/engine/models/vit.ts";
import type { Rng } from "../src/engine/rng.ts";
import { f32 } from "../src/engine/runtime/tensor.ts";
import type { Batch } from "../src/engine/train/trainer.ts";

export function randomBatch(cfg: VitConfig, batch: number, rng: Rng): Batch {
  return {
    images: f32(
      [batch, cfg.channels, cfg.imageSize, cfg.imageSize],
      new Float32Array(batch * cfg.channels * cfg.imageSize ** 2).map(() => rng.normal()),
    ),
    labels: {
      dtype: "int64",
      shape: [batch],
      data: BigInt64Array.from({ length: batch }, () => BigInt(rng.int(cfg.numClasses))),
    },
  };
}
