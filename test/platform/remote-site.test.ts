/**
 * Sites without the data. The dataset is registered with a relative path: it names the data in
 * the platform's working directory and nothing at a site, where API workers (no DATABASE_URL,
 * their own DATA_DIR and working directory) download what they train on from the API server with
 * their worker token, and cache it.
 *
 * 1. A decentralised run whose modules all require site=b: the site=b worker, pinned to the
 *    run's shards (`--shards`, so it takes no job that reads the whole set), downloads only its
 *    modules' shards; the platform's own worker pre-trains and fine-tunes where the data lives.
 * 2. A whole run at site=c: PT downloads the training split once, FT finds it cached, and the
 *    final evaluation downloads the test split.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { writeIdxSplit } from "../data/helpers.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { tinyOverrides } from "../helpers/tiny-run.ts";

const N = 400;
const K = 4;
const DATA = `.tmp/remote-site-${process.pid}/fm`;
const train = writeIdxSplit(resolve(DATA), { n: N, h: 16, w: 16 });
writeIdxSplit(resolve(DATA), { n: 100, h: 16, w: 16, split: "t10k", seed: 9 });

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-remote-site-"));
let local: LocalPlatform;
const workers: Spawned[] = [];
let ids: { architectureId: string; datasetId: string };

async function mutate<T>(query: string, input: Record<string, unknown>): Promise<T> {
  const res = await postGraphQL<Record<string, T & { userErrors: unknown[] }>>(local.api.url, query, {
    input,
  });
  expect(res.errors).toBeUndefined();
  const payload = Object.values(res.data!)[0]!;
  expect(payload.userErrors).toEqual([]);
  return payload;
}

/** A token for `site=<name>` and an API worker there, in a directory of its own. */
async function startSite(name: string, extra: string[] = []): Promise<Spawned> {
  const { secret } = await mutate<{ secret: string }>(
    `mutation ($input: CreateWorkerTokenInput!) { createWorkerToken(input: $input) { secret userErrors { message } } }`,
    { name: `site-${name}`, labels: [`site=${name}`] },
  );
  const site = mkdtempSync(join(tmpdir(), `incubator-site-${name}-`));
  const worker = spawnIncubator(
    ["worker", "--api", local.api.url, "--token", secret, "--id", `${name}1`, "--threads", "1", ...extra],
    { DATABASE_URL: undefined, DATA_DIR: join(site, "data"), LOG_LEVEL: "info" },
    site,
  );
  workers.push(worker);
  await worker.waitFor(/worker token accepted/);
  return worker;
}

interface DataStats {
  cache: string;
  bytesRead: number;
  bytesFetched: number;
  records: number;
}
interface RunShape {
  state: string;
  error: string | null;
  accuracy: number | null;
  modules: { index: number; jobs: { workerId: string }[]; dataStats: DataStats }[];
}

async function runToEnd(
  extra: Record<string, unknown>,
  site: Spawned,
): Promise<{ id: string; node: RunShape }> {
  const { run } = await mutate<{ run: { id: string } }>(
    `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message } } }`,
    {
      kind: "INCUBATION",
      ...ids,
      seed: 4,
      overrides: tinyOverrides({ pretrain: 6, modular: 6, finetune: 6 }),
      ...extra,
    },
  );
  const query = `query ($id: ID!) { node(id: $id) { ... on Run { state error accuracy
    modules { index jobs { workerId } dataStats { cache bytesRead bytesFetched records } } } } }`;
  const deadline = Date.now() + 150_000;
  for (;;) {
    const node = (await postGraphQL<{ node: RunShape }>(local.api.url, query, { id: run.id })).data!.node;
    if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(node.state)) {
      expect(node.state, `${node.error}\n${site.output().slice(-3000)}`).toBe("SUCCEEDED");
      return { id: Buffer.from(run.id, "base64url").toString().split(":")[1]!, node };
    }
    if (Date.now() > deadline) throw new Error(`run still ${node.state}:\n${site.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What a stage's job read, from the result its worker reported. */
async function stageData(runId: string, stage: "PRETRAIN" | "FINETUNE") {
  const job = await t.db.job.findFirstOrThrow({ where: { runId, stage } });
  return { workerId: job.workerId, data: (job.result as unknown as { data: DataStats }).data };
}

beforeAll(async () => {
  // DATA is relative to the server's working directory (a site worker elsewhere cannot read it),
  // so that directory's .tmp is one of the server's data roots.
  local = await startTestPlatform(t, dataDir, {
    workers: 1,
    threads: 1,
    dataRoots: [dataDir, resolve(".tmp")],
  });
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
  ids = { architectureId: arch.architecture.id, datasetId: dataset.dataset.id };
});

afterAll(async () => {
  for (const w of workers) w.child.kill("SIGKILL");
  await local?.close();
  rmSync(resolve(`.tmp/remote-site-${process.pid}`), { recursive: true, force: true });
});

describe("sites without the data", () => {
  it("modules at site b download and cache only their shards; the bytes show in GraphQL", async () => {
    const site = await startSite("b", ["--shards", "0,1,2,3"]);
    const { id, node } = await runToEnd(
      {
        decentralized: true,
        placement: [0, 1, 2, 3].map((moduleIndex) => ({ moduleIndex, labels: ["site=b"] })),
      },
      site,
    );
    const sourceBytes = train.imagesBytes + train.labelsBytes;
    for (const m of node.modules) {
      expect(m.jobs.map((j) => j.workerId)).toEqual(["site-b/b1"]);
      expect(m.dataStats).toMatchObject({ cache: "FETCHED", bytesRead: 0, records: N / K });
      // Only its shard crossed the network: about a quarter of the data (plus a small header).
      expect(m.dataStats.bytesFetched / sourceBytes).toBeGreaterThan(0.2);
      expect(m.dataStats.bytesFetched / sourceBytes).toBeLessThan(0.3);
    }
    // The full set was read where it lives, by the platform's own worker (the pinned site=b
    // worker takes no job that reads the whole split).
    const pt = await stageData(id, "PRETRAIN");
    expect(pt.workerId).not.toMatch(/^site-b\//);
    expect(pt.data).toMatchObject({ cache: "filled-local", records: N });
  }, 200_000);

  it("a whole run at site c: PT downloads the training split, FT finds it cached, evaluation downloads the test split", async () => {
    const site = await startSite("c");
    const { id, node } = await runToEnd({ placement: [{ labels: ["site=c"] }] }, site);
    const pt = await stageData(id, "PRETRAIN");
    const ft = await stageData(id, "FINETUNE");
    expect(pt).toMatchObject({ workerId: "site-c/c1", data: { cache: "fetched", bytesRead: 0, records: N } });
    expect(ft).toMatchObject({
      workerId: "site-c/c1",
      data: { cache: "hit", bytesRead: 0, bytesFetched: 0 },
    });
    expect(node.modules.every((m) => m.jobs[0]?.workerId === "site-c/c1")).toBe(true);
    // The held-out split came over the network too: the run has a test accuracy.
    expect(node.accuracy).toBeGreaterThanOrEqual(0);
    expect(site.output()).not.toMatch(/ENOENT/);
  }, 200_000);
});
