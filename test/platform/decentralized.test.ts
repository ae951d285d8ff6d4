/**
 * A decentralised incubation run on the platform (API, queue, one local worker whose jobs run
 * in `incubator job` child processes) over an IDX dataset: module i's job reads only shard i
 * into the worker's shard cache (DATA_DIR/shards), a later job asking for the same data hits
 * the cache, and GraphQL shows both.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { shardCacheDir } from "../../src/platform/config/config.ts";
import { tempDir, writeIdxSplit } from "../data/helpers.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { EVENT_FIELDS, type SelectedEvent } from "../helpers/events.ts";
import { collectSubscription, postGraphQL, wsClient } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";

const N = 512;
const K = 2;
const t = useTestDatabase();
const dataDir = tempDir("decentralized");
const files = writeIdxSplit(join(dataDir, "fm"), { n: N, h: 8, w: 8 });
let local: LocalPlatform;

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 1, threads: 1 });
});

afterAll(async () => {
  await local?.close();
});

async function gql<T>(query: string, variables: Record<string, unknown>): Promise<T> {
  const res = await postGraphQL<T>(local.api.url, query, variables);
  expect(res.errors).toBeUndefined();
  return res.data!;
}

interface Stats {
  cache: string;
  bytesRead: number;
  bytesFetched: number;
  records: number;
}

describe("a decentralised run on a worker with a shard cache", () => {
  it("module i reads only shard i; fine-tuning reuses the cached full split", async () => {
    const arch = await gql<{ createArchitecture: { architecture: { id: string } } }>(
      `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } } }`,
      {
        input: {
          name: "dmt",
          imageSize: 8,
          channels: 1,
          patchSize: 4,
          width: 16,
          depth: 2,
          heads: 2,
          numClasses: 10,
          modules: K,
        },
      },
    );
    const dataset = await gql<{ registerDataset: { dataset: { id: string } } }>(
      `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } } }`,
      { input: { name: "dmt-idx", spec: { format: "idx", path: join(dataDir, "fm") } } },
    );
    const started = await gql<{ startRun: { run: { id: string } } }>(
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } } }`,
      {
        input: {
          kind: "INCUBATION",
          architectureId: arch.createArchitecture.architecture.id,
          datasetId: dataset.registerDataset.dataset.id,
          decentralized: true,
          overrides: {
            batchSize: 16,
            mixup: 0,
            cutmix: 0,
            augment: {},
            steps: { pretrain: 2, modular: 2, finetune: 2 },
          },
        },
      },
    );
    const runId = started.startRun.run.id;
    const client = wsClient(local.api.wsUrl);
    const { results } = await collectSubscription<{ runEvents: SelectedEvent }>(
      client,
      `subscription ($runId: ID!) { runEvents(runId: $runId) { ${EVENT_FIELDS} } }`,
      { runId },
    );
    await client.dispose();
    const events = results.map((r) => r.data!.runEvents);
    expect(events.at(-1)).toMatchObject({ type: "RUN_STATE", state: "SUCCEEDED" });

    const { run } = await gql<{
      run: {
        modules: { index: number; shard: number; dataStats: Stats }[];
        jobs: { stage: string; dataStats: Stats }[];
      };
    }>(
      `query ($id: ID!) { run(id: $id) {
        modules { index shard dataStats { cache bytesRead bytesFetched records } }
        jobs { stage dataStats { cache bytesRead bytesFetched records } } } }`,
      { id: runId },
    );
    const whole = files.imagesBytes + files.labelsBytes;
    for (const m of run.modules) {
      expect(m.dataStats).toMatchObject({ cache: "FILLED_LOCAL", bytesFetched: 0, records: N / K });
      expect(m.dataStats.bytesRead / whole).toBeCloseTo(1 / K, 1);
      // The module's `start` event says the same, live.
      const start = events.find((e) => e.moduleIndex === m.index && e.type === "JOB_STARTED");
      expect(start?.dataStats).toMatchObject({ cache: "FILLED_LOCAL", records: N / K });
    }
    const byStage = Object.fromEntries(run.jobs.map((j) => [j.stage, j.dataStats]));
    expect(byStage.PRETRAIN).toMatchObject({ cache: "FILLED_LOCAL", records: N });
    expect(byStage.FINETUNE).toMatchObject({ cache: "HIT", bytesRead: 0, records: N });
    // One packed file per distinct selection: the whole split and the K shards.
    expect(readdirSync(shardCacheDir(dataDir)).filter((f) => f.endsWith(".pack"))).toHaveLength(K + 1);
  }, 180_000);
});
