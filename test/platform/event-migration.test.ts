/**
 * A database from before typed run events upgrades in place: its untyped rows (STATE with a
 * scope, a job's "start" stored as LOG, lowercase stages, artifact kinds as strings) become rows
 * of the union, and every one of them parses.
 */
import { cpSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createDb } from "../../src/platform/db/client.ts";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "../../src/platform/db/migrate.ts";
import { createScratchDatabase, type ScratchDatabase } from "../../src/platform/db/scratch.ts";
import { readRunEvents } from "../../src/platform/events/event-log.ts";

const TYPED = "20261201170000_typed_run_events";
let scratch: ScratchDatabase | undefined;
afterAll(async () => {
  await scratch?.drop();
});

describe("the typed-run-events migration", () => {
  it("rewrites every old event row into the union and artifact kinds into the enum", async () => {
    scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_evmig");
    const before = mkdtempSync(join(tmpdir(), "migrations-"));
    for (const name of readdirSync(DEFAULT_MIGRATIONS_DIR).sort()) {
      if (name >= TYPED && !name.endsWith(".toml")) break;
      cpSync(join(DEFAULT_MIGRATIONS_DIR, name), join(before, name), { recursive: true });
    }
    await migrate(scratch.url, before);

    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    const sha = (c: string) => c.repeat(64);
    try {
      const one = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows[0];
      const arch = await one(
        `insert into architecture (id, name, image_size, patch_size, width, depth, heads, num_classes, module_split)
         values (gen_random_uuid(), 'a', 16, 4, 32, 2, 2, 10, '{1,1}') returning id`,
      );
      const ds = await one(
        `insert into dataset (id, name, format, num_classes, train_size, test_size)
         values (gen_random_uuid(), 'd', 'synthetic', 10, 100, 10) returning id`,
      );
      const run = await one(
        `insert into run (id, kind, architecture_id, dataset_id, state) values (gen_random_uuid(), 'INCUBATION', $1, $2, 'SUCCEEDED') returning id`,
        [arch.id, ds.id],
      );
      const mod = await one(
        `insert into module (id, run_id, index, block_start, block_end, updated_at) values (gen_random_uuid(), $1, 1, 1, 2, now()) returning id`,
        [run.id],
      );
      const job = await one(
        `insert into job (id, run_id, module_id, stage, state) values (gen_random_uuid(), $1, $2, 'MODULAR', 'SUCCEEDED') returning id`,
        [run.id, mod.id],
      );
      await client.query(
        `insert into artifact (id, run_id, job_id, kind, sha256, size_bytes, step) values
           (gen_random_uuid(), $1, $2, 'checkpoint', $3, 10, 5),
           (gen_random_uuid(), $1, $2, 'final-model-onnx', $4, 10, null)`,
        [run.id, job.id, sha("a"), sha("b")],
      );
      // The shapes the platform wrote before, one of each.
      const old: [string, number | null, object][] = [
        ["STATE", null, { scope: "run", state: "RUNNING" }],
        ["STATE", 1, { scope: "job", stage: "MODULAR", state: "QUEUED", jobId: job.id }],
        ["STATE", 1, { scope: "job", stage: "MODULAR", state: "RUNNING", attempt: 1, workerId: "w" }],
        [
          "LOG",
          1,
          {
            type: "start",
            phase: "modular",
            moduleIndex: 1,
            totalSteps: 10,
            startStep: 0,
            trainImages: 100,
            stage: "modular",
            data: { cache: "off", bytesRead: 5, bytesFetched: 0, cachedBytes: 0, records: 100 },
          },
        ],
        [
          "PROGRESS",
          1,
          {
            type: "progress",
            step: 5,
            totalSteps: 10,
            loss: 2,
            lr: 0.001,
            imagesPerSecond: 50,
            etaSeconds: 1,
            stage: "modular",
          },
        ],
        ["ARTIFACT", 1, { kind: "checkpoint", step: 5, sha256: sha("a") }],
        [
          "STATE",
          1,
          { scope: "job", stage: "MODULAR", state: "RETRYING", reason: "worker w stopped heartbeating" },
        ],
        ["LOG", 1, { level: "error", stage: "MODULAR", message: "boom", willRetry: true }],
        ["STATE", 1, { scope: "module", state: "QUEUED", retry: true }],
        ["STATE", 1, { scope: "job", stage: "modular", state: "SUCCEEDED", result: { evalAccuracy: null } }],
        ["METRIC", null, { type: "eval", accuracy: 0.5, loss: 1, images: 10, stage: "finetune" }],
        ["STATE", null, { scope: "run", state: "SUCCEEDED", result: { evalAccuracy: 0.5 } }],
      ];
      for (const [i, [type, moduleIndex, payload]] of old.entries()) {
        await client.query(
          `insert into run_event (run_id, seq, type, module_index, payload) values ($1, $2, $3, $4, $5)`,
          [run.id, i + 1, type, moduleIndex, JSON.stringify(payload)],
        );
      }
      await migrate(scratch.url);

      const db = createDb(scratch.url);
      try {
        const events = await readRunEvents(db, run.id, 0); // parses every row, or throws
        expect(events.map((e) => e.type)).toEqual([
          "RUN_STATE",
          "JOB_STATE",
          "JOB_STATE",
          "JOB_STARTED",
          "PROGRESS",
          "ARTIFACT",
          "JOB_STATE",
          "LOG",
          "MODULE_STATE",
          "JOB_STATE",
          "METRIC",
          "RUN_STATE",
        ]);
        expect(events[2]).toMatchObject({ jobId: job.id, state: "RUNNING", attempt: 1, workerId: "w" });
        expect(events[3]).toMatchObject({ stage: "MODULAR", startStep: 0, data: { bytesRead: 5 } });
        expect(events[4]).toMatchObject({ stage: "MODULAR", step: 5 });
        expect(events[5]).toMatchObject({ kind: "CHECKPOINT", step: 5 });
        expect(events[6]).toMatchObject({ state: "QUEUED", reason: "worker w stopped heartbeating" });
        expect(events[7]).toMatchObject({ level: "ERROR", message: "boom" });
        expect(events[8]).toMatchObject({ state: "QUEUED", retry: true });
        expect(events[9]).toMatchObject({ jobId: job.id, stage: "MODULAR", state: "SUCCEEDED" });
        expect(events[10]).toMatchObject({ stage: "FINETUNE", accuracy: 0.5 });
        expect(events[11]).toMatchObject({ state: "SUCCEEDED", finalAccuracy: 0.5 });
        const kinds = await db.artifact.findMany({ where: { runId: run.id }, orderBy: { kind: "asc" } });
        expect(kinds.map((a) => a.kind).sort()).toEqual(["CHECKPOINT", "FINAL_MODEL_ONNX"]);
      } finally {
        await db.$disconnect();
      }
    } finally {
      await client.end();
    }
  });
});
