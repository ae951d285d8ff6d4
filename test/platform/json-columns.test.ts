/** The JSON columns are read through their schemas: rows that do not fit fail, naming the row and field. */
import { describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.ts";
import {
  datasetSpecOf,
  readDatasetOptions,
  readMetaModelSource,
} from "../../src/platform/db/json-columns.ts";

describe("MetaModel.source", () => {
  it("reads each origin, null for rows from before the column, and refuses other shapes", () => {
    const sha256 = "ab".repeat(32);
    expect(
      readMetaModelSource({ name: "m", source: { kind: "registered", fileName: "m.safetensors", sha256 } }),
    ).toEqual({ kind: "registered", fileName: "m.safetensors", sha256 });
    expect(readMetaModelSource({ name: "m", source: null })).toBeNull();
    expect(() => readMetaModelSource({ name: "m", source: { kind: "registered", fileName: "m" } })).toThrow(
      /meta model "m": its source column does not fit:[\s\S]*sha256/,
    );
    expect(() => readMetaModelSource({ name: "m", source: { kind: "downloaded" } })).toThrow(
      /meta model "m"/,
    );
  });
});

describe("Dataset.options", () => {
  const dataset = { name: "d", options: { format: "synthetic", numClasses: 4, length: 8 } };

  it("gives the stored spec with the defaults, and each split's full spec", () => {
    expect(readDatasetOptions(dataset)).toMatchObject({
      format: "synthetic",
      numClasses: 4,
      length: 8,
      seed: 0,
    });
    expect(readDatasetOptions(dataset)).not.toHaveProperty("split");
    expect(datasetSpecOf(dataset, { split: "test", shard: { count: 2, index: 1 } })).toMatchObject({
      split: "test",
      shard: { count: 2, index: 1, seed: 0 },
    });
  });

  it("refuses options that are not a dataset spec, naming the dataset and the field", () => {
    const bad = { name: "d", options: { format: "synthetic", numClasses: "four" } };
    expect(() => readDatasetOptions(bad)).toThrow(DataError);
    expect(() => readDatasetOptions(bad)).toThrow(/dataset "d": .*numClasses/s);
    expect(() => readDatasetOptions({ name: "d", options: [] })).toThrow(
      /dataset "d": its options are not a JSON object/,
    );
  });
});
