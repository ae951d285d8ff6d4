import { describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.ts";
import { openDataset, parseDatasetSpec } from "../../src/data/registry.ts";

describe("openDataset spec validation", () => {
  it("names the offending field", async () => {
    await expect(openDataset({ format: "synthetic", shard: { count: 4, index: 4 } })).rejects.toThrow(
      /field "shard\.index": must be < shard\.count \(4\)/,
    );
    await expect(openDataset({ format: "synthetic", numClasses: 1.5 })).rejects.toThrow(/field "numClasses"/);
    await expect(openDataset({ format: "cifar10" })).rejects.toThrow(/field "path"/);
    await expect(openDataset({ format: "parquet" })).rejects.toThrow(/field "format"/);
    await expect(openDataset({ format: "synthetic", split: "val" })).rejects.toThrow(/field "split"/);
    await expect(openDataset({ format: "synthetic", colour: true })).rejects.toThrow(/colour/);
    await expect(openDataset({ format: "idx" })).rejects.toThrow(/field "path": idx needs either path/);
    await expect(
      openDataset({ format: "synthetic", validation: { fraction: 1.5, part: "val" } }),
    ).rejects.toThrow(/field "validation\.fraction"/);
    await expect(openDataset({ format: "synthetic" }, { indices: [1] }).then(() => "ok")).resolves.toBe("ok");
    await expect(
      openDataset({ format: "synthetic", shard: { count: 2, index: 0 } }, { indices: [1] }),
    ).rejects.toThrow(DataError);
  });

  it("applies defaults", () => {
    const s = parseDatasetSpec({ format: "synthetic" });
    expect(s).toMatchObject({ split: "train", numClasses: 10, channels: 3, imageSize: 32, seed: 0 });
  });

  it("validation hold-out then shard: disjoint and covering", async () => {
    const spec = {
      format: "synthetic",
      length: 500,
      imageSize: 8,
      validation: { fraction: 0.2, seed: 1 },
    } as const;
    const val = await openDataset({ ...spec, validation: { ...spec.validation, part: "val" } });
    const shards = await Promise.all(
      [0, 1, 2].map((index) =>
        openDataset({
          ...spec,
          validation: { ...spec.validation, part: "train" },
          shard: { count: 3, index, seed: 2 },
        }),
      ),
    );
    expect(val.length).toBe(100);
    const all = [...val.sourceIndices!, ...shards.flatMap((s) => [...s.sourceIndices!])].sort(
      (a, b) => a - b,
    );
    expect(all).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(shards.map((s) => s.length)).toEqual([134, 133, 133]);
  });
});
