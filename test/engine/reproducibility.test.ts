/**
 * Reproducibility: a run is a function of its seed. Parameter init, data order (a shuffled
 * epoch permutation) and drop-path masks all come from the seed, so two runs of a ViT with
 * drop-path in the same process give bit-for-bit equal losses and parameters; another seed
 * gives other losses.
 */
import { describe, expect, it } from "vitest";
import { dropMaskShape, dropPathMasks, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import type { VitConfig } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import {
  type Batch,
  compileTrainer,
  Trainer,
  type TrainerArtifacts,
} from "../../src/engine/train/trainer.ts";
import { tinyVit } from "./models.ts";

const CFG: VitConfig = tinyVit({ depth: 3, dropPathRate: 0.3 });
const BATCH = 8;
const STEPS = 10; // more than one epoch of DATA, so the order is reshuffled mid-run

/** A fixed dataset (independent of the run's seed). */
const DATA = (() => {
  const n = 48;
  const size = CFG.channels * CFG.imageSize ** 2;
  const r = new Rng(2024);
  const images = Float32Array.from({ length: n * size }, () => r.normal());
  const labels = BigInt64Array.from({ length: n }, () => BigInt(r.int(CFG.numClasses)));
  return { n, size, images, labels };
})();

interface RunResult {
  losses: number[];
  params: Map<string, Float32Array>;
  masks: Float32Array[];
}

async function run(artifacts: TrainerArtifacts, seed: number): Promise<RunResult> {
  const root = new Rng(seed);
  const trainer = await Trainer.create(artifacts, { seed, intraOpNumThreads: 2 });
  const dataRng = root.fork("data");
  const dropRng = root.fork("droppath");
  let order = dataRng.permutation(DATA.n);
  let pos = 0;
  const losses: number[] = [];
  const masks: Float32Array[] = [];
  for (let step = 0; step < STEPS; step++) {
    const images = new Float32Array(BATCH * DATA.size);
    const labels = new BigInt64Array(BATCH);
    for (let i = 0; i < BATCH; i++) {
      if (pos === DATA.n) {
        order = dataRng.permutation(DATA.n); // next epoch, new order
        pos = 0;
      }
      const k = order[pos++]!;
      images.set(DATA.images.subarray(k * DATA.size, (k + 1) * DATA.size), i * DATA.size);
      labels[i] = DATA.labels[k]!;
    }
    const mask = dropPathMasks(dropRng, CFG.dropPathRate, CFG.depth, BATCH);
    masks.push(mask);
    const batch: Batch = {
      images: { dtype: "float32", shape: [BATCH, CFG.channels, CFG.imageSize, CFG.imageSize], data: images },
      labels: { dtype: "int64", shape: [BATCH], data: labels },
      drop_mask: { dtype: "float32", shape: dropMaskShape(CFG.depth, BATCH), data: mask },
    };
    losses.push((await trainer.trainStep(batch, 2e-3)).loss);
  }
  const params = trainer.parameters();
  await trainer.release();
  return { losses, params, masks };
}

describe("reproducibility", () => {
  it("same seed: bit-for-bit equal losses and parameters; another seed: different losses", async () => {
    const artifacts = compileTrainer(vitClassifierSpec(CFG, { batch: BATCH, optimizer: { kind: "adamw" } }), {
      eval: false,
    });
    const a = await run(artifacts, 7);
    const b = await run(artifacts, 7);
    const c = await run(artifacts, 8);

    // The run really is stochastic: some branches were dropped.
    expect(a.masks.some((m) => m.includes(0))).toBe(true);
    expect(a.losses.every(Number.isFinite)).toBe(true);

    // Object.is-equality on every loss: bitwise, not approximately.
    expect(b.losses).toEqual(a.losses);
    for (const [name, v] of a.params) {
      const w = b.params.get(name)!;
      expect(
        Buffer.from(w.buffer, w.byteOffset, w.byteLength).equals(
          Buffer.from(v.buffer, v.byteOffset, v.byteLength),
        ),
        name,
      ).toBe(true);
    }

    expect(c.losses).not.toEqual(a.losses);
    expect(c.losses.filter((x, i) => x !== a.losses[i]).length).toBe(STEPS);
  });
});
