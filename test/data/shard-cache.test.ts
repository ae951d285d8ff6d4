import { readFileSync, renameSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.ts";
import { decodePacked, encodePacked } from "../../src/data/packed.ts";
import { openDataset } from "../../src/data/registry.ts";
import { openTrainingData, shardCacheKey } from "../../src/data/shard-cache.ts";
import { equalBytes, sameBatches, tempDir, writeIdxSplit } from "./helpers.ts";

// 400 images of 16×16: the image file is 102 kB, the labels 408 bytes.
const N = 400;
const SIDE = 16;
const K = 4;
const root = tempDir("shard-cache");
const rawDir = join(root, "raw");
const gzDir = join(root, "gz");
const raw = writeIdxSplit(rawDir, { n: N, h: SIDE, w: SIDE });
const gz = writeIdxSplit(gzDir, { n: N, h: SIDE, w: SIDE, gzip: true });
const shardSpec = (path: string, index: number, more: object = {}) => ({
  format: "idx",
  path,
  shard: { count: K, index, seed: 3 },
  ...more,
});

describe("packed dataset files", () => {
  it("round-trip a shard exactly (labels, source indices, pixels, class names)", async () => {
    const ds = await openDataset({
      ...shardSpec(rawDir, 1),
      classNames: ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
    });
    const back = decodePacked(encodePacked(ds, "k"), "test", "k");
    expect([back.length, back.channels, back.height, back.width, back.numClasses]).toEqual([
      N / K,
      1,
      SIDE,
      SIDE,
      10,
    ]);
    expect(back.classNames).toEqual(ds.classNames);
    expect(Array.from(back.labels)).toEqual(Array.from(ds.labels));
    expect(Array.from(back.sourceIndices!)).toEqual(Array.from(ds.sourceIndices!));
    for (let i = 0; i < ds.length; i++) expect(equalBytes(back.getImage(i), ds.getImage(i))).toBe(true);
  });

  it("refuse damaged bytes and another selection's file, naming the file", async () => {
    const bytes = encodePacked(await openDataset(shardSpec(rawDir, 0)), "key-a");
    const flipped = bytes.slice();
    flipped[flipped.length - 100]! ^= 1;
    expect(() => decodePacked(flipped, "f.pack")).toThrow(/f\.pack: .*sha256 does not match/);
    expect(() => decodePacked(bytes.subarray(0, bytes.length - 1), "f.pack")).toThrow(/truncated or padded/);
    expect(() => decodePacked(new Uint8Array(64), "f.pack")).toThrow(/does not start with "INCPACK1"/);
    expect(() => decodePacked(bytes, "f.pack", "key-b")).toThrow(/spec it was built from differs/);
  });
});

describe("openTrainingData with a shard cache", () => {
  it("reads about 1/K of a raw IDX split once, then hits the cache without touching the source", async () => {
    const cache = { dir: join(root, "cache-raw") };
    const local = await openDataset(shardSpec(rawDir, 2));
    const first = await openTrainingData(shardSpec(rawDir, 2), cache);
    expect(first.data).toMatchObject({ cache: "filled-local", bytesFetched: 0, records: N / K });
    // The shard's image records, all the labels (sharding needs them) and two headers.
    const shardImageBytes = (N / K) * SIDE * SIDE;
    expect(first.data.bytesRead).toBeGreaterThanOrEqual(shardImageBytes);
    expect(first.data.bytesRead).toBeLessThanOrEqual(shardImageBytes + raw.labelsBytes + 64);
    expect(first.data.bytesRead / (raw.imagesBytes + raw.labelsBytes)).toBeCloseTo(1 / K, 1);
    expect(first.dataset.stats.bytesRead).toBe(first.data.bytesRead);
    expect(first.data.cachedBytes).toBe(statSync(first.data.path!).size);
    expect(sameBatches(first.dataset, local, 8)).toBe(true);

    // Hide the source: a hit must not need it.
    renameSync(rawDir, `${rawDir}-away`);
    try {
      const second = await openTrainingData(shardSpec(rawDir, 2), cache);
      expect(second.data).toMatchObject({
        cache: "hit",
        bytesRead: 0,
        bytesFetched: 0,
        path: first.data.path,
      });
      expect(second.dataset.stats.bytesRead).toBe(0);
      expect(sameBatches(second.dataset, local, 8)).toBe(true);
    } finally {
      renameSync(`${rawDir}-away`, rawDir);
    }
  });

  it("misses for another seed, count, index or split selection, and keys the same selection alike", async () => {
    const cache = { dir: join(root, "cache-keys") };
    const base = await openTrainingData(shardSpec(rawDir, 0), cache);
    for (const other of [
      shardSpec(rawDir, 0, { shard: { count: K, index: 0, seed: 4 } }),
      shardSpec(rawDir, 0, { shard: { count: K + 1, index: 0, seed: 3 } }),
      shardSpec(rawDir, 1),
      shardSpec(rawDir, 0, { validation: { fraction: 0.1, part: "train" } }),
    ]) {
      const opened = await openTrainingData(other, cache);
      expect(opened.data.cache, JSON.stringify(other)).toBe("filled-local");
      expect(opened.data.path).not.toBe(base.data.path);
    }
    // Defaults filled and keys reordered: the same selection, the same key.
    expect(
      shardCacheKey({ shard: { seed: 3, index: 0, count: K }, path: rawDir, format: "idx", split: "train" }),
    ).toBe(shardCacheKey(shardSpec(rawDir, 0)));
    // No shard means the whole split, which is shard 0 of 1.
    expect(shardCacheKey({ format: "idx", path: rawDir })).toBe(
      shardCacheKey({ format: "idx", path: rawDir, shard: { count: 1, index: 0 } }),
    );
  });

  it("detects a corrupt or truncated cache file and rebuilds it from the source", async () => {
    const cache = { dir: join(root, "cache-corrupt") };
    const first = await openTrainingData(shardSpec(rawDir, 3), cache);
    const path = first.data.path!;
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    bad[bad.length - 500]! ^= 0xff; // one pixel
    writeFileSync(path, bad);
    const rebuilt = await openTrainingData(shardSpec(rawDir, 3), cache);
    expect(rebuilt.data).toMatchObject({ cache: "filled-local", replacedCorrupt: true });
    expect(rebuilt.data.bytesRead).toBe(first.data.bytesRead);
    expect(readFileSync(path).equals(good)).toBe(true);

    truncateSync(path, 100);
    expect((await openTrainingData(shardSpec(rawDir, 3), cache)).data).toMatchObject({
      replacedCorrupt: true,
    });
    expect((await openTrainingData(shardSpec(rawDir, 3), cache)).data.cache).toBe("hit");
  });

  it("gzip IDX: the first build reads the whole .gz once per machine, later jobs read nothing", async () => {
    const cache = { dir: join(root, "cache-gz") };
    const first = await openTrainingData(shardSpec(gzDir, 1), cache);
    expect(first.data.cache).toBe("filled-local");
    // Gzip cannot be seeked: the whole image stream is decompressed (plus the labels and a header peek).
    expect(first.data.bytesRead).toBeGreaterThanOrEqual(gz.imagesBytes + gz.labelsBytes);
    const again = await openTrainingData(shardSpec(gzDir, 1), cache);
    expect(again.data).toMatchObject({ cache: "hit", bytesRead: 0 });
    expect(sameBatches(again.dataset, await openDataset(shardSpec(rawDir, 1)), 4)).toBe(true);
  });

  it("without a cache, or for synthetic data, reads directly and says so", async () => {
    const direct = await openTrainingData(shardSpec(rawDir, 0));
    expect(direct.data).toMatchObject({ cache: "off", cachedBytes: 0, records: N / K });
    expect(direct.data.bytesRead).toBe(direct.dataset.stats.bytesRead);
    const synthetic = await openTrainingData(
      { format: "synthetic", length: 20, imageSize: 8 },
      { dir: join(root, "x") },
    );
    expect(synthetic.data).toMatchObject({ cache: "off", bytesRead: 0, records: 20 });
  });

  it("a source missing here and no remote: the reader's own error, naming the path", async () => {
    await expect(
      openTrainingData(shardSpec(join(root, "nowhere"), 0), { dir: join(root, "cache-missing") }),
    ).rejects.toThrow(DataError);
  });
});
