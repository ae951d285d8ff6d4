import { createHash } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from "../../src/platform/db/migrate.ts";
import { createScratchDatabase } from "../../src/platform/db/scratch.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createArchitectureAndDataset } from "../helpers/rows.ts";

const t = useTestDatabase();

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
