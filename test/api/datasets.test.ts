import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { encodeIdx } from "../../src/data/formats/idx.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { REGISTER_DATASET, type UserErrorShape, unique, useApiServer } from "./support.ts";

const t = useTestDatabase();
const api = useApiServer(t);
const dir = mkdtempSync(join(tmpdir(), "incubator-api-datasets-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface DatasetShape {
  id: string;
  name: string;
  format: string;
  path: string | null;
  spec: Record<string, unknown>;
  numClasses: number;
  trainSize: number;
  testSize: number;
}
interface Payload {
  registerDataset: { dataset: DatasetShape | null; userErrors: UserErrorShape[] };
}

async function register(spec: unknown, name = unique("ds")) {
  return (await api.gql<Payload>(REGISTER_DATASET, { input: { name, spec } })).registerDataset;
}

/** IDX image and label files of `n` 4×4 images, labels i mod `classes`, under `prefix`. */
function writeIdx(folder: string, prefix: string, n: number, classes: number) {
  const images = new Uint8Array(n * 16).map((_, i) => i % 251);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % classes);
  writeFileSync(join(folder, `${prefix}-images-idx3-ubyte`), encodeIdx([n, 4, 4], images));
  writeFileSync(join(folder, `${prefix}-labels-idx1-ubyte`), encodeIdx([n], labels));
  return {
    images: join(folder, `${prefix}-images-idx3-ubyte`),
    labels: join(folder, `${prefix}-labels-idx1-ubyte`),
  };
}

describe("registerDataset", () => {
  it("registers a synthetic dataset and deals its train split into balanced, disjoint shards", async () => {
    const { dataset, userErrors } = await register({
      format: "synthetic",
      numClasses: 5,
      length: 103,
      imageSize: 8,
    });
    expect(userErrors).toEqual([]);
    expect(dataset).toMatchObject({
      format: "synthetic",
      path: null,
      numClasses: 5,
      trainSize: 103,
      testSize: 103,
    });
    expect(dataset!.spec).toMatchObject({ format: "synthetic", numClasses: 5, length: 103, seed: 0 });
    expect(dataset!.spec).not.toHaveProperty("split");

    const res = await api.gql<{
      dataset: { classCounts: number[]; shards: { index: number; size: number; classCounts: number[] }[] };
    }>(`query ($id: ID!) { dataset(id: $id) { classCounts shards(count: 4) { index size classCounts } } }`, {
      id: dataset!.id,
    });
    const { classCounts, shards } = res.dataset;
    expect(classCounts).toHaveLength(5);
    expect(classCounts.reduce((a, b) => a + b, 0)).toBe(103);
    expect(shards.map((s) => s.index)).toEqual([0, 1, 2, 3]);
    const sizes = shards.map((s) => s.size);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(103);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    for (let c = 0; c < 5; c++) {
      const perShard = shards.map((s) => s.classCounts[c]!);
      // disjoint and covering: the shards' counts add up to the class; balanced: within one
      expect(perShard.reduce((a, b) => a + b, 0)).toBe(classCounts[c]);
      expect(Math.max(...perShard) - Math.min(...perShard)).toBeLessThanOrEqual(1);
    }
    for (const shard of shards) expect(shard.classCounts.reduce((a, b) => a + b, 0)).toBe(shard.size);
  });

  it("refuses a shard count the dataset cannot fill", async () => {
    const { dataset } = await register({ format: "synthetic", numClasses: 2, length: 3, imageSize: 4 });
    const res = await postGraphQL(
      api.server.url,
      `query ($id: ID!) { dataset(id: $id) { shards(count: 4) { size } } }`,
      { id: dataset!.id },
    );
    expect(res.errors?.[0]).toMatchObject({ extensions: { code: "BAD_USER_INPUT", argument: "count" } });
  });

  it("registers an IDX directory: train and test split sizes, classes from the labels", async () => {
    const folder = mkdtempSync(join(dir, "idx-"));
    writeIdx(folder, "train", 40, 4);
    writeIdx(folder, "t10k", 12, 4);
    const { dataset, userErrors } = await register({ format: "idx", path: folder });
    expect(userErrors).toEqual([]);
    expect(dataset).toMatchObject({
      format: "idx",
      path: folder,
      numClasses: 4,
      trainSize: 40,
      testSize: 12,
    });
    const res = await api.gql<{ dataset: { classCounts: number[] } }>(
      `query ($id: ID!) { dataset(id: $id) { classCounts } }`,
      { id: dataset!.id },
    );
    expect(res.dataset.classCounts).toEqual([10, 10, 10, 10]);
  });

  it("gives a dataset without a test split testSize 0", async () => {
    const folder = mkdtempSync(join(dir, "idx-train-only-"));
    const files = writeIdx(folder, "train", 20, 3);
    expect((await register({ format: "idx", path: folder })).dataset).toMatchObject({
      trainSize: 20,
      testSize: 0,
    });
    expect((await register({ format: "idx", ...files })).dataset).toMatchObject({
      path: files.images,
      numClasses: 3,
      trainSize: 20,
      testSize: 0,
    });
  });

  it("names the spec fields that are wrong", async () => {
    const fields = async (spec: unknown) => (await register(spec)).userErrors.map((e) => e.field?.join("."));
    expect(await fields({ format: "idx" })).toEqual(["input.spec.path"]);
    expect(await fields({ format: "tfrecord" })).toEqual(["input.spec.format"]);
    expect(await fields({ format: "synthetic", numClasses: 1, colour: true })).toEqual([
      "input.spec.numClasses",
      "input.spec.colour",
    ]);
    expect(await fields({ format: "synthetic", shard: { count: 2, index: 0 } })).toEqual([
      "input.spec.shard",
    ]);
    expect(await fields("synthetic")).toEqual(["input.spec"]);

    const bad = await register({ format: "synthetic", numClasses: 1 });
    expect(bad.userErrors[0]).toMatchObject({
      message: expect.stringMatching(/^spec\.numClasses: /),
      code: "INVALID",
    });
  });

  it("reports files it cannot read as UNREADABLE on the field that names them, without their details", async () => {
    const missing = await register({ format: "idx", path: join(dir, "nowhere") });
    expect(missing.dataset).toBeNull();
    expect(missing.userErrors).toEqual([
      {
        field: ["input", "spec", "path"],
        code: "NOT_FOUND",
        message: expect.stringMatching(/^spec\.path: not a readable path inside the server's data roots/),
      },
    ]);
    const empty = mkdtempSync(join(dir, "idx-empty-"));
    const nothing = await register({ format: "idx", path: empty });
    expect(nothing.userErrors).toMatchObject([
      {
        field: ["input", "spec", "path"],
        code: "UNREADABLE",
        message: expect.stringMatching(
          /^spec\.path: cannot be read as a idx dataset; the server's log has the details \(request [\w-]+\)$/,
        ),
      },
    ]);
    const folder = mkdtempSync(join(dir, "idx-swapped-"));
    const files = writeIdx(folder, "train", 10, 2);
    const swapped = await register({ format: "idx", images: files.labels, labels: files.images });
    expect(swapped.userErrors).toMatchObject([{ field: ["input", "spec", "labels"], code: "UNREADABLE" }]);
    expect(JSON.stringify(swapped.userErrors)).not.toContain(dir);
  });

  it("refuses a taken name", async () => {
    const name = unique("taken");
    expect((await register({ format: "synthetic", length: 10 }, name)).userErrors).toEqual([]);
    expect((await register({ format: "synthetic", length: 10 }, name)).userErrors).toMatchObject([
      { field: ["input", "name"], code: "TAKEN" },
    ]);
  });
});

describe("datasets", () => {
  it("lists datasets as a connection and resolves node(id:)", async () => {
    const { dataset } = await register({ format: "synthetic", length: 10 });
    const res = await api.gql<{
      datasets: { totalCount: number; nodes: { id: string }[] };
      node: { __typename: string; name: string };
    }>(
      `query ($id: ID!) { datasets(first: 100) { totalCount nodes { id } } node(id: $id) { __typename ... on Dataset { name } } }`,
      {
        id: dataset!.id,
      },
    );
    expect(res.datasets.nodes.map((d) => d.id)).toContain(dataset!.id);
    expect(res.datasets.totalCount).toBe(res.datasets.nodes.length);
    expect(res.node).toEqual({ __typename: "Dataset", name: dataset!.name });
  });
});
