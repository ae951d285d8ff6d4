/**
 * A decentralised run whose modules train at a site without the data: an API worker (no
 * DATABASE_URL, its own DATA_DIR and working directory, where the dataset's relative path leads
 * nowhere) is the only worker with label site=b, which every module requires. It downloads just
 * its modules' shards from the API server with its worker token and caches them; the platform's
 * own worker, where the data lives, pre-trains and fine-tunes on the whole set.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/platform/local.ts";
import { writeIdxSplit } from "../data/helpers.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { tinyOverrides } from "../helpers/tiny-run.ts";

const N = 400;
const K = 4;
// Relative on purpose: it names the data here (the platform's working directory) and nothing
// at the other site.
const DATA = `.tmp/remote-site-${process.pid}/fm`;
const files = writeIdxSplit(resolve(DATA), { n: N, h: 16, w: 16 });

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-remote-site-"));
const siteDir = mkdtempSync(join(tmpdir(), "incubator-site-b-"));
let local: LocalPlatform;
let worker: Spawned | undefined;

async function mutate<T>(query: string, input: Record<string, unknown>): Promise<T> {
  const res = await postGraphQL<Record<string, T & { userErrors: unknown[] }>>(local.api.url, query, {
    input,
  });
  expect(res.errors).toBeUndefined();
  const payload = Object.values(res.data!)[0]!;
  expect(payload.userErrors).toEqual([]);
  return payload;
}

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 1, threads: 1 });
});

afterAll(async () => {
  worker?.child.kill("SIGKILL");
  await local?.close();
  rmSync(resolve(`.tmp/remote-site-${process.pid}`), { recursive: true, force: true });
});

describe("modules at a site without the data", () => {
  it("an API worker downloads and caches only its modules' shards; the bytes show in GraphQL", async () => {
    const { secret } = await mutate<{ secret: string }>(
      `mutation ($input: CreateWorkerTokenInput!) { createWorkerToken(input: $input) { secret userErrors { message } } }`,
      { name: "site-b", labels: ["site=b"] },
    );
    const arch = await mutate<{ architecture: { id: string } }>(
      `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { message } } }`,
      {
        name: "remote",
        imageSize: 16,
        channels: 1,
        patchSize: 4,
        width: 32,
        depth: 4,
        heads: 2,
        numClasses: 10,
        modules: K,
      },
    );
    const dataset = await mutate<{ dataset: { id: string } }>(
      `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { message } } }`,
      { name: "remote-fm", spec: { format: "idx", path: DATA } },
    );
    worker = spawnIncubator(
      [
        "worker",
        "--api",
        local.api.url,
        "--token",
        secret,
        "--id",
        "b1",
        "--threads",
        "1",
        "--labels",
        "site=b",
      ],
      { DATABASE_URL: undefined, DATA_DIR: join(siteDir, "data"), LOG_LEVEL: "info" },
      siteDir,
    );
    await worker.waitFor(/worker token accepted/);
    const { run } = await mutate<{ run: { id: string } }>(
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message } } }`,
      {
        kind: "INCUBATION",
        architectureId: arch.architecture.id,
        datasetId: dataset.dataset.id,
        decentralized: true,
        seed: 4,
        placement: [0, 1, 2, 3].map((moduleIndex) => ({ moduleIndex, labels: ["site=b"] })),
        overrides: tinyOverrides({ pretrain: 6, modular: 6, finetune: 6 }),
      },
    );

    const query = `query ($id: ID!) { node(id: $id) { ... on Run { state error
      modules { index shard jobs { workerId } dataStats { cache bytesRead bytesFetched records } } } } }`;
    type Shape = {
      state: string;
      error: string | null;
      modules: {
        index: number;
        shard: number;
        jobs: { workerId: string }[];
        dataStats: { cache: string; bytesRead: number; bytesFetched: number; records: number };
      }[];
    };
    const deadline = Date.now() + 150_000;
    let node: Shape;
    for (;;) {
      node = (await postGraphQL<{ node: Shape }>(local.api.url, query, { id: run.id })).data!.node;
      if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(node.state)) break;
      if (Date.now() > deadline) throw new Error(`run still ${node.state}:\n${worker.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(node.state, `${node.error}\n${worker.output().slice(-3000)}`).toBe("SUCCEEDED");
    const sourceBytes = files.imagesBytes + files.labelsBytes;
    for (const m of node.modules) {
      expect(m.jobs.map((j) => j.workerId)).toEqual(["site-b/b1"]);
      expect(m.dataStats).toMatchObject({ cache: "FETCHED", bytesRead: 0, records: N / K });
      // Only its shard crossed the network: about a quarter of the data (plus a small header).
      expect(m.dataStats.bytesFetched / sourceBytes).toBeGreaterThan(0.2);
      expect(m.dataStats.bytesFetched / sourceBytes).toBeLessThan(0.3);
    }
    const pt = await t.db.job.findFirstOrThrow({ where: { stage: "PRETRAIN" } });
    expect(pt.workerId).not.toMatch(/^site-b\//); // the full set was read where it lives
  }, 200_000);
});
