import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.ts";
import {
  encodeIdx,
  FASHION_MNIST_CLASSES,
  openIdxDataset,
  readIdxHeader,
} from "../../src/data/formats/idx.ts";
import { openDataset } from "../../src/data/registry.ts";
import { balancedShards } from "../../src/data/splits.ts";
import { fixtureBytes, tempDir } from "./helpers.ts";

const N = 50;
const H = 7;
const W = 5;
const dir = tempDir("idx");
const pixels = fixtureBytes(N * H * W, 42);
const labels = Uint8Array.from({ length: N }, (_, i) => (i * 7) % 10);
const imagesIdx = encodeIdx([N, H, W], pixels);
const labelsIdx = encodeIdx([N], labels);
writeFileSync(join(dir, "train-images-idx3-ubyte"), imagesIdx);
writeFileSync(join(dir, "train-labels-idx1-ubyte"), labelsIdx);
writeFileSync(join(dir, "images.gz"), gzipSync(imagesIdx));
writeFileSync(join(dir, "labels.gz"), gzipSync(labelsIdx));

function image(i: number): Uint8Array {
  return pixels.subarray(i * H * W, (i + 1) * H * W);
}

describe("IDX reader", () => {
  it("reads raw files: shape, labels and pixels", async () => {
    const ds = await openDataset({ format: "idx", path: dir, split: "train" });
    expect([ds.length, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([N, 1, H, W, 10]);
    for (const i of [0, 1, 17, N - 1]) {
      expect(ds.getLabel(i)).toBe(labels[i]);
      expect(Array.from(ds.getImage(i))).toEqual(Array.from(image(i)));
    }
    expect(() => ds.getImage(N)).toThrow(/out of range/);
  });

  it("reads gzip files (detected by magic, not name) identically", async () => {
    const raw = await openIdxDataset({
      images: join(dir, "train-images-idx3-ubyte"),
      labels: join(dir, "train-labels-idx1-ubyte"),
    });
    const gz = await openIdxDataset({ images: join(dir, "images.gz"), labels: join(dir, "labels.gz") });
    for (let i = 0; i < N; i++) {
      expect(Array.from(gz.getImage(i))).toEqual(Array.from(raw.getImage(i)));
      expect(gz.getLabel(i)).toBe(raw.getLabel(i));
    }
  });

  it("loads only a shard, in the requested order, reading only its bytes from a raw file", async () => {
    const want = [31, 3, 4, 5, 3];
    const ds = await openIdxDataset({
      images: join(dir, "train-images-idx3-ubyte"),
      labels: join(dir, "train-labels-idx1-ubyte"),
      indices: want,
    });
    expect(ds.length).toBe(5);
    want.forEach((r, k) => {
      expect(Array.from(ds.getImage(k))).toEqual(Array.from(image(r)));
      expect(ds.getLabel(k)).toBe(labels[r]);
    });
    expect(Array.from(ds.sourceIndices!)).toEqual(want);
    // The whole labels file + 4 distinct image records + a few header/magic bytes; not the image file.
    const payload = labelsIdx.length + 4 * H * W;
    expect(ds.stats.bytesRead).toBeGreaterThanOrEqual(payload);
    expect(ds.stats.bytesRead).toBeLessThanOrEqual(payload + 64);
    expect(ds.stats.bytesRead).toBeLessThan(imagesIdx.length / 4);
  });

  it("rejects truncated raw and gzip files with the file name and 'truncated'", async () => {
    writeFileSync(join(dir, "trunc-images"), imagesIdx.subarray(0, imagesIdx.length - 3));
    await expect(
      openIdxDataset({ images: join(dir, "trunc-images"), labels: join(dir, "train-labels-idx1-ubyte") }),
    ).rejects.toThrow(/trunc-images: truncated: header promises 50 records/);

    const gz = gzipSync(imagesIdx);
    writeFileSync(join(dir, "trunc-images.gz"), gz.subarray(0, gz.length - 40));
    await expect(
      openIdxDataset({ images: join(dir, "trunc-images.gz"), labels: join(dir, "labels.gz") }),
    ).rejects.toThrow(/trunc-images\.gz: .*truncated/);

    writeFileSync(join(dir, "tiny"), Uint8Array.of(0, 0, 8, 3, 0, 0));
    await expect(readIdxHeader(join(dir, "tiny"))).rejects.toThrow(/too short for an IDX header/);
  });

  it("rejects foreign files, swapped paths, mismatched counts and bad labels", async () => {
    writeFileSync(
      join(dir, "foreign.png"),
      Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0),
    );
    await expect(
      openIdxDataset({ images: join(dir, "foreign.png"), labels: join(dir, "train-labels-idx1-ubyte") }),
    ).rejects.toThrow(/foreign\.png: not an IDX file: magic bytes are 89 50 4e 47/);

    await expect(
      openIdxDataset({
        images: join(dir, "train-labels-idx1-ubyte"),
        labels: join(dir, "train-images-idx3-ubyte"),
      }),
    ).rejects.toThrow(/expected a label file.*swap/);

    writeFileSync(join(dir, "short-labels"), encodeIdx([N - 1], labels.subarray(0, N - 1)));
    await expect(
      openIdxDataset({ images: join(dir, "train-images-idx3-ubyte"), labels: join(dir, "short-labels") }),
    ).rejects.toThrow(/holds 50 images but .*short-labels holds 49 labels/);

    await expect(
      openIdxDataset({
        images: join(dir, "train-images-idx3-ubyte"),
        labels: join(dir, "train-labels-idx1-ubyte"),
        numClasses: 5,
      }),
    ).rejects.toThrow(/outside \[0, 5\)/);

    writeFileSync(join(dir, "padded"), Uint8Array.from([...imagesIdx, 1, 2]));
    await expect(
      openIdxDataset({ images: join(dir, "padded"), labels: join(dir, "train-labels-idx1-ubyte") }),
    ).rejects.toThrow(/2 unexpected bytes after the last record/);

    await expect(openIdxDataset({ images: join(dir, "nope"), labels: join(dir, "nope2") })).rejects.toThrow(
      DataError,
    );
    await expect(openDataset({ format: "idx", path: dir, split: "test" })).rejects.toThrow(
      /no t10k-images-idx3-ubyte/,
    );
  });

  it("rejects out-of-range shard indices with the index named", async () => {
    await expect(
      openIdxDataset({ images: join(dir, "images.gz"), labels: join(dir, "labels.gz"), indices: [0, 50] }),
    ).rejects.toThrow(/indices\[1\] = 50 is out of range: the files hold 50 records/);
  });
});

const FMNIST = "/usr/share/datasets/fashion-mnist";
const haveFmnist = existsSync(join(FMNIST, "train-images-idx3-ubyte.gz"));
if (!haveFmnist) {
  console.warn(
    `Fashion-MNIST not found in ${FMNIST}; skipping the real-data test (apt-get install -y dataset-fashion-mnist)`,
  );
}

describe.skipIf(!haveFmnist)("Fashion-MNIST from Debian (real files)", () => {
  it("reads the train and test splits with the published sizes and balance", async () => {
    const train = await openDataset({
      format: "idx",
      path: FMNIST,
      split: "train",
      classNames: [...FASHION_MNIST_CLASSES],
    });
    const test = await openDataset({ format: "idx", path: FMNIST, split: "test" });
    expect([train.length, train.height, train.width, train.channels, train.numClasses]).toEqual([
      60000, 28, 28, 1, 10,
    ]);
    expect(test.length).toBe(10000);
    expect(train.classNames?.[9]).toBe("Ankle boot");
    // The published first training labels: ankle boot, T-shirt, T-shirt, dress, …
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    const counts = new Array(10).fill(0);
    for (const y of train.labels) counts[y]++;
    expect(counts).toEqual(new Array(10).fill(6000));
    // Image 0 is a boot: dark background, bright object pixels.
    const img = train.getImage(0);
    expect(img[0]).toBe(0);
    expect(Math.max(...img)).toBeGreaterThan(200);
  });

  it("a balanced shard keeps only its records in memory", async () => {
    const shard = await openDataset({
      format: "idx",
      path: FMNIST,
      split: "test",
      shard: { count: 4, index: 2, seed: 7 },
    });
    expect(shard.length).toBe(2500);
    const counts = new Array(10).fill(0);
    for (const y of shard.labels) counts[y]++;
    expect(counts).toEqual(new Array(10).fill(250));
    const full = await openDataset({ format: "idx", path: FMNIST, split: "test" });
    const k = 1234;
    expect(Array.from(shard.getImage(k))).toEqual(Array.from(full.getImage(shard.sourceIndices![k]!)));
    const again = balancedShards(full.labels, 4, 7)[2]!;
    expect(Array.from(shard.sourceIndices!)).toEqual(Array.from(again));
  });
});
