/**
 * The shard route over real HTTP, and a "worker" (openTrainingData with a remote) that cannot
 * read the dataset's files downloading, verifying and caching its shard from a real API server.
 */
import { createHash } from "node:crypto";
import { renameSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { DataError } from "../../src/data/errors.ts";
import { decodePacked } from "../../src/data/packed.ts";
import { openDataset } from "../../src/data/registry.ts";
import { openTrainingData, shardCacheKey } from "../../src/data/shard-cache.ts";
import { SHARD_SHA256_HEADER, SHARD_SOURCE_BYTES_HEADER } from "../../src/data/shard-remote.ts";
import { createWorkerToken } from "../../src/platform/auth/worker-tokens.ts";
import { sameBatches, tempDir, writeIdxSplit } from "../data/helpers.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createRunRows } from "../helpers/rows.ts";
import { REGISTER_DATASET, unique, useApiServer } from "./support.ts";

const N = 400;
const SIDE = 16;
const K = 4;
const root = tempDir("shard-route");
const source = join(root, "fm");
const files = writeIdxSplit(source, { n: N, h: SIDE, w: SIDE });

const t = useTestDatabase();
const api = useApiServer(t, { shardCacheDir: join(root, "server-shards") });

const baseUrl = () => api.server.url.replace(/\/graphql$/, "");
/** Shards are for workers: every request carries a worker token, whose worker holds a job on the shard. */
let token = "";
const site = unique("site");
beforeAll(async () => {
  token = (await createWorkerToken(t.db, { name: site, labels: [] })).secret;
});
/** A RUNNING job held by the token's worker that reads `shard` of the dataset `uuid`. */
async function holdShard(uuid: string, shard = { count: K, index: 1, seed: 7 }) {
  const { run } = await createRunRows(t.db);
  await t.db.job.create({
    data: {
      runId: run.id,
      stage: "MODULAR",
      state: "RUNNING",
      workerId: `${site}/w1`,
      spec: { datasetId: uuid, dataset: { format: "idx", shard } },
    },
  });
}
const get = (path: string) => fetch(`${baseUrl()}${path}`, { headers: { authorization: `Bearer ${token}` } });
const shardSpec = (index: number, more: object = {}) => ({
  format: "idx",
  path: source,
  split: "train",
  shard: { count: K, index, seed: 7 },
  ...more,
});

async function registerDataset(): Promise<{ id: string; uuid: string }> {
  const { registerDataset } = await api.gql<{ registerDataset: { dataset: { id: string } } }>(
    REGISTER_DATASET,
    {
      input: { name: unique("fm"), spec: { format: "idx", path: source } },
    },
  );
  const id = registerDataset.dataset.id;
  return { id, uuid: Buffer.from(id, "base64url").toString().split(":")[1]! };
}

describe("GET /datasets/<id>/shards/<count>/<index>", () => {
  it("builds the shard from only its records, caches it, and sends it with its sha256", async () => {
    const { id, uuid } = await registerDataset();
    // Only a worker holding a running job on that dataset and shard gets it.
    expect((await get(`/datasets/${id}/shards/${K}/1?seed=7`)).status).toBe(403);
    await holdShard(uuid);
    expect((await get(`/datasets/${id}/shards/${K}/2?seed=7`)).status).toBe(403);
    expect((await get(`/datasets/${id}/shards/1/0?seed=0`)).status).toBe(403); // the whole train split
    const first = await get(`/datasets/${id}/shards/${K}/1?seed=7`);
    expect(first.status).toBe(200);
    const body = new Uint8Array(await first.arrayBuffer());
    expect(first.headers.get(SHARD_SHA256_HEADER)).toBe(createHash("sha256").update(body).digest("hex"));
    expect(Number(first.headers.get("content-length"))).toBe(body.length);
    const serverRead = Number(first.headers.get(SHARD_SOURCE_BYTES_HEADER));
    expect(serverRead / (files.imagesBytes + files.labelsBytes)).toBeCloseTo(1 / K, 1);
    // The server's file is exactly the selection a worker's job spec names.
    const shard = decodePacked(body, "response", shardCacheKey(shardSpec(1)));
    const local = await openDataset(shardSpec(1));
    expect(sameBatches(shard, local, 4)).toBe(true);

    // Asked again (by uuid this time): from the server's cache, no source bytes read.
    const again = await get(`/datasets/${uuid}/shards/${K}/1?seed=7`);
    expect(again.headers.get(SHARD_SOURCE_BYTES_HEADER)).toBe("0");
    expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(body))).toBe(true);
  });

  it("refuses bad requests with the parameter and the fix", async () => {
    const { id, uuid } = await registerDataset();
    await holdShard(uuid, { count: 4, index: 0, seed: 0 });
    const anonymous = await fetch(`${baseUrl()}/datasets/${id}/shards/4/0`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code: string }).code).toBe("UNAUTHENTICATED");
    const cases: [string, number, RegExp][] = [
      // What no job of this worker reads is refused before it is looked at.
      [`/datasets/nope/shards/4/0`, 403, /only the shards of the running jobs its workers hold/],
      [`/datasets/00000000-0000-4000-8000-000000000000/shards/4/0`, 403, /running jobs its workers hold/],
      [`/datasets/${id}/shards/0/0`, 403, /running jobs its workers hold/],
      [`/datasets/${id}/shards/4/4`, 403, /running jobs its workers hold/],
      [`/datasets/${id}/shards/${N + 1}/0`, 403, /running jobs its workers hold/],
      [`/datasets/${id}/shards/4/0?seed=-1`, 403, /running jobs its workers hold/],
      [`/datasets/${id}/shards/4/0?split=val`, 400, /split: must be "train" or "test"/],
      [`/datasets/${id}/shards/4/0?split=test`, 404, /has no test split/],
    ];
    for (const [path, status, message] of cases) {
      const response = await get(path);
      expect(response.status, path).toBe(status);
      expect(((await response.json()) as { error: string }).error, path).toMatch(message);
    }
  });
});

describe("a worker that cannot read the dataset's files", () => {
  it("downloads its shard, verifies and caches it, and trains on the same batches as a local read", async () => {
    const { id, uuid } = await registerDataset();
    await holdShard(uuid, { count: K, index: 2, seed: 7 });
    await holdShard(uuid, { count: K, index: 3, seed: 7 });
    const remote = { baseUrl: api.server.url, datasetId: id, token };
    const cache = { dir: join(root, "worker-shards"), remote };
    const local = await openDataset(shardSpec(2));
    // The server has this shard from an earlier worker; then the files leave this machine.
    expect((await get(`/datasets/${id}/shards/${K}/2?seed=7`)).status).toBe(200);
    renameSync(source, `${source}-elsewhere`);
    try {
      const fetched = await openTrainingData(shardSpec(2), cache);
      expect(fetched.data).toMatchObject({ cache: "fetched", bytesRead: 0, records: N / K });
      expect(fetched.data.bytesFetched).toBe(fetched.data.cachedBytes);
      expect(fetched.data.bytesFetched).toBeLessThan((N / K) * SIDE * SIDE + 4096);
      expect(sameBatches(fetched.dataset, local, 8)).toBe(true);

      const hit = await openTrainingData(shardSpec(2), cache);
      expect(hit.data).toMatchObject({ cache: "hit", bytesRead: 0, bytesFetched: 0 });
      expect(sameBatches(hit.dataset, local, 8)).toBe(true);

      // A spec that is not the registered one: the server's file is refused, nothing is cached.
      await expect(openTrainingData(shardSpec(2, { numClasses: 12 }), cache)).rejects.toThrow(
        /spec it was built from differs/,
      );
      // The server cannot build a shard it has not cached while its files are gone: worth a retry.
      const unbuilt = openTrainingData(shardSpec(3), cache);
      await expect(unbuilt).rejects.toThrow(/answered 503 .*cannot be read on the server/);
      await expect(unbuilt).rejects.not.toBeInstanceOf(DataError);
      // An unknown dataset is refused for good.
      const gone = { ...cache, remote: { ...remote, datasetId: "00000000-0000-4000-8000-000000000000" } };
      await expect(openTrainingData(shardSpec(0), gone)).rejects.toThrow(DataError);
    } finally {
      renameSync(`${source}-elsewhere`, source);
    }
  });
});

describe("Job.dataStats and Module.dataStats", () => {
  it("show how each job got its data, from the result the worker stored", async () => {
    const { run } = await createRunRows(t.db, { modules: true, run: { decentralized: true } });
    const modules = await t.db.module.findMany({ where: { runId: run.id }, orderBy: { index: "asc" } });
    const data = {
      cache: "filled-local",
      bytesRead: 26_004,
      bytesFetched: 0,
      cachedBytes: 26_112,
      records: 100,
    };
    const job = await t.db.job.create({
      data: {
        runId: run.id,
        moduleId: modules[1]!.id,
        stage: "MODULAR",
        state: "SUCCEEDED",
        result: { data },
      },
    });
    await t.db.job.create({
      data: { runId: run.id, moduleId: modules[1]!.id, stage: "MODULAR", state: "RUNNING" },
    });
    const jobId = Buffer.from(`Job:${job.id}`).toString("base64url");
    const runId = Buffer.from(`Run:${run.id}`).toString("base64url");
    const out = await api.gql<{
      job: { dataStats: unknown };
      run: { modules: { index: number; dataStats: unknown }[] };
    }>(
      `query ($job: ID!, $run: ID!) {
        job: node(id: $job) { ... on Job { dataStats { cache bytesRead bytesFetched cachedBytes records } } }
        run(id: $run) { modules { index dataStats { cache bytesRead records } } }
      }`,
      { job: jobId, run: runId },
    );
    expect(out.job.dataStats).toEqual({ ...data, cache: "FILLED_LOCAL" });
    expect(out.run.modules[1]!.dataStats).toEqual({ cache: "FILLED_LOCAL", bytesRead: 26_004, records: 100 });
    expect(out.run.modules[0]!.dataStats).toBeNull();
  });
});
