/**
 * The platform as a client uses it: the API in this process (no local workers), two
 * `incubator worker` processes, a run started with GraphQL over HTTP and followed over
 * graphql-ws, then lineage queried and the final ONNX model downloaded and run.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { readRunEvents } from "../../src/platform/events/event-log.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { EVENT_FIELDS, type SelectedEvent } from "../helpers/events.ts";
import { authHeaders, collectSubscription, postGraphQL, wsClient } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { createTinyArchitectureAndDataset, tinyOverrides } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-api-e2e-"));
let local: LocalPlatform;
const workers: Spawned[] = [];

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 0 });
  for (const id of ["w1", "w2"]) {
    workers.push(
      spawnIncubator(["worker", "--id", id, "--threads", "1", "--heartbeat-ms", "1000"], {
        DATABASE_URL: t.url,
        DATA_DIR: dataDir,
      }),
    );
  }
  await Promise.all(workers.map((w) => w.waitFor(/worker ready/)));
});

afterAll(async () => {
  for (const w of workers) w.child.kill("SIGTERM");
  await Promise.all(workers.map((w) => w.exited));
  await local?.close();
});

async function mutate<T>(query: string, input: Record<string, unknown>): Promise<T> {
  const res = await postGraphQL<Record<string, T>>(local.api.url, query, { input });
  expect(res.errors).toBeUndefined();
  return Object.values(res.data!)[0]!;
}

describe("an incubation run through the API with two workers", () => {
  it("streams per-module progress from both workers in stage order and answers lineage", async () => {
    const ids = await createTinyArchitectureAndDataset(local.api.url, "e2e-tiny", 512);
    const started = await mutate<{
      run: { id: string; modules: { index: number }[] };
      userErrors: unknown[];
    }>(
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id modules { index } } userErrors { field message } } }`,
      {
        kind: "INCUBATION",
        ...ids,
        seed: 2,
        overrides: tinyOverrides({ pretrain: 20, modular: 40, finetune: 20 }),
      },
    );
    expect(started.userErrors).toEqual([]);
    const runId = started.run.id;

    const client = wsClient(local.api.wsUrl);
    const { results, error } = await collectSubscription<{ runEvents: SelectedEvent }>(
      client,
      `subscription ($runId: ID!) { runEvents(runId: $runId) { ${EVENT_FIELDS} } }`,
      { runId },
    );
    await client.dispose();
    expect(error).toBeUndefined();
    const events = results.map((r) => r.data!.runEvents);

    // Exactly the table, in order, ending with the run's success.
    const rawId = Buffer.from(runId, "base64url").toString().split(":")[1]!;
    // readRunEvents parses every stored row against the event union: one that does not fit throws.
    const stored = await readRunEvents(t.db, rawId, 0, { limit: 10_000 });
    expect(events.map((e) => e.seq)).toEqual(stored.map((e) => e.seq));
    expect(new Set(stored.map((e) => e.type))).toEqual(
      new Set([
        "RUN_STATE",
        "JOB_STATE",
        "MODULE_STATE",
        "JOB_STARTED",
        "PROGRESS",
        "METRIC",
        "EVAL_POINT",
        "ARTIFACT",
      ]),
    );
    expect(events.at(-1)).toMatchObject({ type: "RUN_STATE", moduleIndex: null, state: "SUCCEEDED" });
    expect(events.at(-1)!["finalAccuracy"]).toEqual(expect.any(Number));

    // Per-module progress, and the modules' jobs ran on both workers.
    for (const m of [0, 1, 2, 3]) {
      expect(events.some((e) => e.type === "PROGRESS" && e.moduleIndex === m && e.step === 40)).toBe(true);
    }
    const holders = new Set(
      events
        .filter((e) => e.type === "JOB_STATE" && e.moduleIndex !== null && e.jobState === "RUNNING")
        .map((e) => e.workerId),
    );
    expect(holders).toEqual(new Set(["w1", "w2"]));
    const stageOf = (e: (typeof events)[number]) => e.stage;
    const progress = events.filter((e) => e.type === "PROGRESS");
    const lastPt = progress.findLastIndex((e) => stageOf(e) === "PRETRAIN");
    const firstMt = progress.findIndex((e) => stageOf(e) === "MODULAR");
    const lastMt = progress.findLastIndex((e) => stageOf(e) === "MODULAR");
    const firstFt = progress.findIndex((e) => stageOf(e) === "FINETUNE");
    expect(lastPt).toBeLessThan(firstMt);
    expect(lastMt).toBeLessThan(firstFt);

    // Lineage, both directions.
    const lineage = await postGraphQL<{
      node: {
        state: string;
        accuracy: number;
        stages: { kind: string; state: string }[];
        modules: {
          index: number;
          lineage: {
            metaModel: { numModules: number; sourceRun: { id: string } };
            checkpoints: { step: number }[];
            assembledInto: { kind: string };
          };
        }[];
        finalModel: {
          kind: string;
          sha256: string;
          downloadUrl: string;
          assembledFrom: { index: number }[] | null;
        };
      };
    }>(
      local.api.url,
      `query ($id: ID!) { node(id: $id) { ... on Run { state accuracy stages { kind state }
        modules { index lineage { metaModel { numModules sourceRun { id } } checkpoints { step } assembledInto { kind } } }
        finalModel { kind sha256 downloadUrl assembledFrom { index } } } } }`,
      { id: runId },
    );
    expect(lineage.errors).toBeUndefined();
    const run = lineage.data!.node;
    expect(run.state).toBe("SUCCEEDED");
    expect(run.accuracy).toBeGreaterThan(0);
    expect(run.stages.map((s) => s.kind)).toEqual(["PRETRAIN", "MODULAR", "FINETUNE"]);
    for (const m of run.modules) {
      expect(m.lineage.metaModel.numModules).toBe(4);
      expect(m.lineage.metaModel.sourceRun.id).toBe(runId);
      expect(m.lineage.checkpoints.map((c) => c.step)).toContain(40);
      expect(m.lineage.assembledInto.kind).toBe("ASSEMBLED_MODEL");
    }
    expect(run.finalModel.kind).toBe("FINAL_MODEL_ONNX");

    // The final model downloads over HTTP and predicts in a fresh ONNX Runtime session.
    const downloadUrl = new URL(run.finalModel.downloadUrl, local.api.url);
    expect((await fetch(downloadUrl)).status).toBe(401); // artifacts need a token of their project
    const download = await fetch(downloadUrl, { headers: authHeaders(downloadUrl) });
    expect(download.status).toBe(200);
    const path = join(dataDir, "downloaded.onnx");
    writeFileSync(path, Buffer.from(await download.arrayBuffer()));
    const session = await ort.InferenceSession.create(path);
    const out = await session.run({
      images: new ort.Tensor("float32", new Float32Array(5 * 3 * 8 * 8).fill(0.3), [5, 3, 8, 8]),
    });
    expect(out.logits!.dims).toEqual([5, 4]);
    await session.release();
  }, 240_000);
});
