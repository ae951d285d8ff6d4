import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { encodeCifar, openCifarDataset, readCifarLabels } from "../../src/data/formats/cifar.ts";
import { openDataset } from "../../src/data/registry.ts";
import { fixtureBytes, tempDir } from "./helpers.ts";

const dir10 = tempDir("cifar10");
const dir100 = tempDir("cifar100");
const PER_BATCH = 20;

function records(n: number, seed: number, classes: number) {
  return Array.from({ length: n }, (_, i) => ({
    label: (i * 3 + seed) % classes,
    coarse: ((i * 3 + seed) % classes) % 20,
    pixels: fixtureBytes(3072, seed * 1000 + i + 1),
  }));
}

const batches = [1, 2, 3, 4, 5].map((b) => records(PER_BATCH, b, 10));
batches.forEach((recs, b) => {
  writeFileSync(join(dir10, `data_batch_${b + 1}.bin`), encodeCifar("cifar10", recs));
});
writeFileSync(join(dir10, "test_batch.bin"), encodeCifar("cifar10", records(10, 9, 10)));
writeFileSync(
  join(dir10, "batches.meta.txt"),
  "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
);
const train100 = records(30, 4, 100);
writeFileSync(join(dir100, "train.bin"), encodeCifar("cifar100", train100));
writeFileSync(join(dir100, "test.bin"), encodeCifar("cifar100", records(8, 5, 100)));

describe("CIFAR binary reader", () => {
  it("reads CIFAR-10 train across the five batch files, in order, with class names", async () => {
    const ds = await openDataset({ format: "cifar10", path: dir10 });
    expect([ds.length, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([100, 3, 32, 32, 10]);
    expect(ds.classNames?.[0]).toBe("airplane");
    const rec = batches[2]![7]!; // record 2*20+7
    expect(ds.getLabel(47)).toBe(rec.label);
    expect(Array.from(ds.getImage(47))).toEqual(Array.from(rec.pixels));
    const test = await openDataset({ format: "cifar10", path: dir10, split: "test" });
    expect(test.length).toBe(10);
  });

  it("reads CIFAR-100 fine and coarse labels", async () => {
    const fine = await openDataset({ format: "cifar100", path: dir100 });
    const coarse = await openDataset({ format: "cifar100", path: dir100, labelMode: "coarse" });
    expect([fine.numClasses, coarse.numClasses]).toEqual([100, 20]);
    expect(fine.getLabel(5)).toBe(train100[5]!.label);
    expect(coarse.getLabel(5)).toBe(train100[5]!.coarse);
    expect(Array.from(fine.getImage(29))).toEqual(Array.from(train100[29]!.pixels));
  });

  it("reads only a shard's records (bytes read ≈ shard size)", () => {
    const files = [1, 2, 3, 4, 5].map((b) => join(dir10, `data_batch_${b}.bin`));
    const labels = readCifarLabels("cifar10", files);
    expect(labels.length).toBe(100);
    const ds = openCifarDataset({ variant: "cifar10", files, indices: [99, 0, 21, 20] });
    expect(ds.getLabel(0)).toBe(batches[4]![19]!.label);
    expect(Array.from(ds.getImage(2))).toEqual(Array.from(batches[1]![1]!.pixels));
    expect(ds.stats.bytesRead).toBe(4 * 3073 + 5 * 2); // 4 records + gzip sniffing of each file
  });

  it("rejects wrong record sizes, the other variant, gzip archives and missing files", async () => {
    const bad = join(dir10, "bad.bin");
    writeFileSync(bad, fixtureBytes(3073 * 2 - 1, 3));
    expect(() => openCifarDataset({ variant: "cifar10", files: [bad] })).toThrow(
      /bad\.bin: size 6145 bytes is not a whole number of cifar10 records \(3073 bytes each/,
    );
    // A CIFAR-100 file read as CIFAR-10: sizes differ (3074 vs 3073), caught with a hint.
    expect(() => openCifarDataset({ variant: "cifar10", files: [join(dir100, "train.bin")] })).toThrow(
      /try format "cifar100"/,
    );
    const wrongLabel = join(dir10, "label.bin");
    writeFileSync(wrongLabel, encodeCifar("cifar10", [{ label: 42, pixels: new Uint8Array(3072) }]));
    expect(() => readCifarLabels("cifar10", [wrongLabel])).toThrow(
      /record 0 has label 42, outside \[0, 10\)/,
    );
    const gz = join(dir10, "gz.bin");
    writeFileSync(gz, gzipSync(encodeCifar("cifar10", batches[0]!)));
    expect(() => openCifarDataset({ variant: "cifar10", files: [gz] })).toThrow(/gzip-compressed.*tar xzf/);
    await expect(openDataset({ format: "cifar100", path: dir10 })).rejects.toThrow(/missing .*train\.bin/);
    await expect(openDataset({ format: "cifar10", path: dir10, labelMode: "coarse" })).rejects.toThrow(
      /field "labelMode"|Unrecognized key/,
    );
  });
});
