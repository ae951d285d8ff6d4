import { describe, expect, it } from "vitest";
import { openSynthetic } from "../../src/data/formats/synthetic.ts";
import { type Batch, BatchLoader, type BatchLoaderOptions } from "../../src/data/loader.ts";
import { balancedShards } from "../../src/data/splits.ts";
import { equalBytes } from "./helpers.ts";

const ds = openSynthetic({
  numClasses: 4,
  channels: 1,
  height: 12,
  width: 12,
  length: 90,
  seed: 2,
  split: "train",
});
const options: BatchLoaderOptions = {
  batchSize: 8,
  seed: 99,
  augment: {
    crop: { kind: "padded", padding: 2 },
    hflip: 0.5,
    randAugment: {},
    randomErasing: { prob: 0.5 },
  },
  mix: { mixupAlpha: 0.8, cutmixAlpha: 1, labelSmoothing: 0.1 },
};

function same(a: Batch, b: Batch): boolean {
  return (
    equalBytes(a.images, b.images) &&
    equalBytes(a.labels, b.labels) &&
    equalBytes(a.targets!, b.targets!) &&
    a.epoch === b.epoch &&
    a.position === b.position &&
    a.iteration === b.iteration
  );
}

describe("BatchLoader", () => {
  it("covers each record of the subset once per epoch in a seeded order", () => {
    const shard = balancedShards(ds.labels, 3, 0)[1]!;
    const loader = new BatchLoader(ds, { ...options, indices: shard, dropLast: false });
    expect(loader.batchesPerEpoch).toBe(Math.ceil(30 / 8));
    const epochs: number[][] = [];
    for (let e = 0; e < 2; e++) {
      const seen: number[] = [];
      for (const b of loader.epochBatches()) {
        expect(b.epoch).toBe(e);
        seen.push(...b.indices);
        expect(b.targets!.length).toBe(b.shape[0] * 4);
      }
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from(shard));
      epochs.push(seen);
    }
    expect(epochs[0]).not.toEqual(epochs[1]); // reshuffled each epoch
  });

  it("resumes exactly from a saved state, across an epoch boundary", () => {
    const a = new BatchLoader(ds, options);
    const reference = Array.from({ length: 25 }, () => a.next());
    const b = new BatchLoader(ds, options);
    for (let k = 0; k < 9; k++) b.next();
    const saved = JSON.parse(JSON.stringify(b.state())); // as it would travel in a checkpoint
    const c = new BatchLoader(ds, options);
    c.restore(saved);
    for (let k = 9; k < 25; k++) expect(same(c.next(), reference[k]!), `batch ${k}`).toBe(true);
    expect(reference[11]!.epoch).toBe(1); // 90/8 → 11 batches per epoch, so we crossed one
  });

  it("same seed → same batches; different seed → different", () => {
    const x = new BatchLoader(ds, options).next();
    const y = new BatchLoader(ds, options).next();
    const z = new BatchLoader(ds, { ...options, seed: 100 }).next();
    expect(same(x, y)).toBe(true);
    expect(equalBytes(x.images, z.images)).toBe(false);
  });

  it("refuses a state from another config, and gives int64 labels on request", () => {
    const a = new BatchLoader(ds, options);
    a.next();
    const other = new BatchLoader(ds, { ...options, batchSize: 4 });
    expect(() => other.restore(a.state())).toThrow(/different data, shard, batch size or augmentation/);
    const l = new BatchLoader(ds, { batchSize: 5, seed: 1, labelType: "int64", shuffle: false });
    const b = l.next();
    expect(b.labels).toBeInstanceOf(BigInt64Array);
    expect(Array.from(b.labels, Number)).toEqual(Array.from(ds.labels.subarray(0, 5)));
    expect(b.targets).toBeUndefined();
    expect(() => new BatchLoader(ds, { batchSize: 100, seed: 1 })).toThrow(/make no full batch/);
  });
});
