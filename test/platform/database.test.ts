import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from "../../src/platform/db/migrate.ts";
import { createScratchDatabase } from "../../src/platform/db/scratch.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createArchitectureAndDataset } from "../helpers/rows.ts";

const t = useTestDatabase();
/** The migration that moved MetaModel.config into typed columns. */
const CONFIG_COLUMNS = "20261201172143_meta_model_config_columns";
/** The migration that gave artifacts a project and made names unique per project. */
const PROJECT_NAMES = "20261201191901_project_names_quota_event_batches";
/** The migration that let runs reuse another run's modules. */
const RUN_REUSE = "20261201204500_run_reuse";

/**
 * A scratch database migrated up to (not including) `migration`, for `body` to fill with rows as
 * they could be then and upgrade with `migrate(url)`; dropped afterwards.
 */
async function upgradeFrom(
  migration: string,
  body: (client: pg.Client, url: string) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "incubator-migrations-"));
  cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  for (const m of readMigrations(dir))
    if (m.name >= migration) rmSync(join(dir, m.name), { recursive: true });
  const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_upgrade");
  const client = new pg.Client({ connectionString: scratch.url });
  await client.connect();
  try {
    await migrate(scratch.url, dir);
    await body(client, scratch.url);
  } finally {
    await client.end();
    await scratch.drop();
  }
}

describe("migrations", () => {
  it("creates every core table and records each migration as Prisma does", async () => {
    const client = new pg.Client({ connectionString: t.url });
    await client.connect();
    try {
      const tables = await client.query<{ tablename: string }>(
        "select tablename from pg_tables where schemaname = 'public' order by tablename",
      );
      expect(tables.rows.map((r) => r.tablename)).toEqual(
        expect.arrayContaining([
          "_prisma_migrations",
          "architecture",
          "artifact",
          "dataset",
          "job",
          "meta_model",
          "module",
          "run",
          "run_event",
        ]),
      );
      const history = await client.query<{ migration_name: string; checksum: string; finished_at: Date }>(
        `select migration_name, checksum, finished_at from "_prisma_migrations" order by migration_name`,
      );
      const files = readMigrations();
      expect(history.rows.map((r) => r.migration_name)).toEqual(files.map((f) => f.name));
      for (const [i, row] of history.rows.entries()) {
        const sql = readFileSync(join(DEFAULT_MIGRATIONS_DIR, row.migration_name, "migration.sql"));
        expect(row.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
        expect(row.finished_at).toBeInstanceOf(Date);
        expect(files[i]?.checksum).toBe(row.checksum);
      }
    } finally {
      await client.end();
    }
  });

  it("is idempotent and safe when several processes migrate at once", async () => {
    const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_concurrent");
    try {
      const results = await Promise.all([migrate(scratch.url), migrate(scratch.url), migrate(scratch.url)]);
      const appliedCounts = results.map((r) => r.applied.length).sort();
      expect(appliedCounts).toEqual([0, 0, readMigrations().length]);
      const again = await migrate(scratch.url);
      expect(again.applied).toEqual([]);
    } finally {
      await scratch.drop();
    }
  });

  it("refuses a migration that was edited after it was applied", async () => {
    const dir = mkdtempSync(join(tmpdir(), "incubator-migrations-"));
    cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    const first = readMigrations(dir)[0]!;
    writeFileSync(join(dir, first.name, "migration.sql"), `${first.sql}\n-- edited\n`);
    await expect(migrate(t.url, dir)).rejects.toThrow(/was edited after it was applied/);
  });
  it("moves meta model configs into typed columns in a database that already has rows", async () => {
    // The migrations before this one, rows as they could be then, then the rest.
    await upgradeFrom(CONFIG_COLUMNS, async (client, url) => {
      await client.query(`
      insert into architecture (id, name, image_size, channels, patch_size, width, depth, heads, mlp_ratio, num_classes, module_split)
      values ('00000000-0000-0000-0000-0000000000a1', 'a1', 16, 1, 4, 64, 4, 4, 2, 7, '{1,1,1,1}'),
             ('00000000-0000-0000-0000-0000000000a2', 'a2', 16, 3, 4, 64, 4, 4, 4, 9, '{1,1,1,1}');
      insert into dataset (id, name, format, num_classes, train_size, test_size)
      values ('00000000-0000-0000-0000-0000000000d1', 'd1', 'synthetic', 5, 10, 0);
      insert into run (id, kind, architecture_id, dataset_id)
      values ('00000000-0000-0000-0000-0000000000b1', 'META_PRETRAIN', '00000000-0000-0000-0000-0000000000a1',
              '00000000-0000-0000-0000-0000000000d1');
      insert into meta_model (id, name, width, heads, patch_size, image_size, num_modules, dataset_id, source_run_id, config)
      values ('00000000-0000-0000-0000-000000000001', 'pretrained-here', 32, 4, 4, 16, 4, null, '00000000-0000-0000-0000-0000000000b1', null),
             ('00000000-0000-0000-0000-000000000002', 'used-by-a-run', 32, 4, 4, 16, 4, null, null, null),
             ('00000000-0000-0000-0000-000000000003', 'dataset-only', 32, 4, 4, 16, 4, '00000000-0000-0000-0000-0000000000d1', null, null),
             ('00000000-0000-0000-0000-000000000004', 'nothing-known', 32, 4, 4, 16, 4, null, null, null),
             ('00000000-0000-0000-0000-000000000005', 'with-config', 32, 4, 4, 16, 4, null, null,
              '{"imageSize": 16, "channels": 1, "patchSize": 4, "width": 48, "depth": 3, "heads": 4, "mlpRatio": 2.5,
                "qkvBias": false, "layerNormEps": 1e-5, "numClasses": 11, "dropPathRate": 0.1}');
      insert into run (id, kind, architecture_id, dataset_id, meta_model_id, created_at)
      values ('00000000-0000-0000-0000-0000000000b2', 'INCUBATION', '00000000-0000-0000-0000-0000000000a2',
              '00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-000000000002', now()),
             ('00000000-0000-0000-0000-0000000000b3', 'INCUBATION', '00000000-0000-0000-0000-0000000000a2',
              '00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-000000000001', now());
    `);
      const result = await migrate(url);
      expect(result.applied).toContain(CONFIG_COLUMNS);
      const rows = await client.query(
        `select name, image_size, channels, patch_size, width, num_modules, heads, mlp_ratio, qkv_bias,
              layer_norm_eps, num_classes from meta_model order by id`,
      );
      const shape = { image_size: 16, patch_size: 4, width: 32, num_modules: 4, heads: 4 };
      const defaults = { channels: 3, mlp_ratio: 4, qkv_bias: true, layer_norm_eps: 1e-6 };
      expect(rows.rows).toEqual([
        // its own pre-training run's architecture, not that of a later run that used it
        { name: "pretrained-here", ...shape, ...defaults, channels: 1, mlp_ratio: 2, num_classes: 7 },
        { name: "used-by-a-run", ...shape, ...defaults, num_classes: 9 },
        { name: "dataset-only", ...shape, ...defaults, num_classes: 5 },
        { name: "nothing-known", ...shape, ...defaults, num_classes: 1000 },
        {
          name: "with-config",
          image_size: 16,
          channels: 1,
          patch_size: 4,
          width: 48,
          num_modules: 3,
          heads: 4,
          mlp_ratio: 2.5,
          qkv_bias: false,
          layer_norm_eps: 1e-5,
          num_classes: 11,
        },
      ]);
      const columns = await client.query(
        "select column_name from information_schema.columns where table_name = 'meta_model'",
      );
      expect(columns.rows.map((c) => c.column_name)).not.toContain("config");
    });
  });
});

describe("names per project, artifacts with a project", () => {
  it("upgrades a database with rows in place: artifacts take their run's or meta model's project", async () => {
    const id = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, "0")}`;
    await upgradeFrom(PROJECT_NAMES, async (client, url) => {
      // Project 2 ("vision") holds a run with a checkpoint and a registered meta model's weights;
      // one artifact belongs to neither (it stays in "default").
      await client.query(`
      insert into project (id, name) values ('${id(2)}', 'vision');
      insert into architecture (id, name, image_size, patch_size, width, depth, heads, num_classes, module_split, project_id)
      values ('${id(10)}', 'vit', 16, 4, 64, 4, 4, 7, '{1,1,1,1}', '${id(2)}');
      insert into dataset (id, name, format, num_classes, train_size, test_size, project_id)
      values ('${id(20)}', 'data', 'synthetic', 5, 10, 0, '${id(2)}');
      insert into run (id, kind, architecture_id, dataset_id, project_id)
      values ('${id(30)}', 'E2E', '${id(10)}', '${id(20)}', '${id(2)}');
      insert into artifact (id, run_id, kind, sha256, size_bytes)
      values ('${id(40)}', '${id(30)}', 'CHECKPOINT', '${"a".repeat(64)}', 10),
             ('${id(41)}', null, 'META_WEIGHTS', '${"b".repeat(64)}', 20),
             ('${id(42)}', null, 'META_WEIGHTS', '${"c".repeat(64)}', 30);
      insert into meta_model (id, name, width, heads, patch_size, image_size, num_modules, num_classes, checkpoint_id, project_id)
      values ('${id(50)}', 'meta', 32, 4, 4, 16, 4, 7, '${id(41)}', '${id(2)}');
    `);
      expect((await migrate(url)).applied).toContain(PROJECT_NAMES);
      const artifacts = await client.query("select id, project_id from artifact order by id");
      expect(artifacts.rows).toEqual([
        { id: id(40), project_id: id(2) },
        { id: id(41), project_id: id(2) },
        { id: id(42), project_id: id(1) },
      ]);
      // The same name in another project is allowed now; in the same project it is not.
      await client.query(`insert into architecture (name, id, image_size, patch_size, width, depth, heads, num_classes, module_split)
      values ('vit', '${id(11)}', 16, 4, 64, 4, 4, 7, '{1,1,1,1}')`);
      await expect(
        client.query(`insert into architecture (name, id, image_size, patch_size, width, depth, heads, num_classes, module_split, project_id)
        values ('vit', '${id(12)}', 16, 4, 64, 4, 4, 7, '{1,1,1,1}', '${id(2)}')`),
      ).rejects.toThrow(/architecture_project_id_name_key/);
    });
  });
});

describe("the run-reuse migration", () => {
  it("upgrades runs and modules in place: they reused nothing; new rows may point at old ones", async () => {
    const id = (n: number) => `00000000-0000-0000-0000-${String(n).padStart(12, "0")}`;
    await upgradeFrom(RUN_REUSE, async (client, url) => {
      await client.query(`
      insert into architecture (id, name, image_size, patch_size, width, depth, heads, num_classes, module_split)
      values ('${id(10)}', 'vit', 16, 4, 64, 2, 4, 7, '{1,1}');
      insert into dataset (id, name, format, num_classes, train_size, test_size)
      values ('${id(20)}', 'data', 'synthetic', 5, 10, 0);
      insert into run (id, kind, architecture_id, dataset_id) values ('${id(30)}', 'INCUBATION', '${id(10)}', '${id(20)}');
      insert into module (id, run_id, index, block_start, block_end, state, updated_at)
      values ('${id(40)}', '${id(30)}', 0, 0, 1, 'SUCCEEDED', now());
      insert into artifact (id, run_id, kind, sha256, size_bytes)
      values ('${id(50)}', '${id(30)}', 'WEIGHTS', '${"a".repeat(64)}', 10);
    `);
      expect((await migrate(url)).applied).toContain(RUN_REUSE);
      const old = await client.query("select reused_from_run_id from run");
      expect(old.rows).toEqual([{ reused_from_run_id: null }]);
      const oldModule = await client.query("select reused_from_id, reused_weights_id from module");
      expect(oldModule.rows).toEqual([{ reused_from_id: null, reused_weights_id: null }]);
      // A reuse run written after the upgrade points at the old run, module and weights.
      await client.query(`
      insert into run (id, kind, architecture_id, dataset_id, reused_from_run_id)
      values ('${id(31)}', 'INCUBATION', '${id(10)}', '${id(20)}', '${id(30)}');
      insert into module (id, run_id, index, block_start, block_end, state, updated_at, reused_from_id, reused_weights_id)
      values ('${id(41)}', '${id(31)}', 0, 0, 1, 'SUCCEEDED', now(), '${id(40)}', '${id(50)}');
    `);
      await expect(
        client.query(`update module set reused_weights_id = '${id(99)}' where id = '${id(41)}'`),
      ).rejects.toThrow(/module_reused_weights_id_fkey/);
    });
  });
});

async function architectureAndDataset(name: string, depth: number, moduleSplit: number[]) {
  const { architecture: arch, dataset } = await createArchitectureAndDataset(t.db, {
    name,
    architecture: { imageSize: 32, width: 192, depth, heads: 3, moduleSplit },
  });
  return { arch, dataset };
}

describe("core tables through Prisma", () => {
  it("writes a run with its modules and reads it back", async () => {
    const { arch, dataset } = await architectureAndDataset("deit-t-16", 16, [4, 4, 4, 4]);
    const run = await t.db.run.create({
      data: {
        kind: "INCUBATION",
        architectureId: arch.id,
        datasetId: dataset.id,
        seed: 7,
        modules: {
          create: [0, 1, 2, 3].map((index) => ({ index, blockStart: index * 4, blockEnd: index * 4 + 4 })),
        },
      },
    });
    const back = await t.db.run.findUniqueOrThrow({
      where: { id: run.id },
      include: { modules: { orderBy: { index: "asc" } }, architecture: true },
    });
    expect(back.state).toBe("QUEUED");
    expect(back.architecture.moduleSplit).toEqual([4, 4, 4, 4]);
    expect(back.modules.map((m) => [m.index, m.blockStart, m.blockEnd])).toEqual([
      [0, 0, 4],
      [1, 4, 8],
      [2, 8, 12],
      [3, 12, 16],
    ]);
  });

  it("enforces one event per (run, seq)", async () => {
    const { arch, dataset } = await architectureAndDataset("tiny", 4, [1, 1, 1, 1]);
    const run = await t.db.run.create({
      data: { kind: "E2E", architectureId: arch.id, datasetId: dataset.id },
    });
    await t.db.runEvent.create({
      data: { runId: run.id, seq: 1, type: "RUN_STATE", payload: { state: "RUNNING" } },
    });
    await expect(
      t.db.runEvent.create({ data: { runId: run.id, seq: 1, type: "PROGRESS", payload: { step: 1 } } }),
    ).rejects.toMatchObject({ code: "P2002" });
    await t.db.runEvent.create({ data: { runId: run.id, seq: 2, type: "PROGRESS", payload: { step: 1 } } });
    const events = await t.db.runEvent.findMany({ where: { runId: run.id }, orderBy: { seq: "asc" } });
    expect(events.map((e) => [e.seq, e.type])).toEqual([
      [1, "RUN_STATE"],
      [2, "PROGRESS"],
    ]);
  });
});
