/** `incubator migrate` (the Kubernetes migration Job's command): applies, then finds nothing to do. */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { readMigrations } from "../../src/platform/db/migrate.ts";
import { createScratchDatabase, type ScratchDatabase } from "../../src/platform/db/scratch.ts";
import { spawnIncubator } from "../helpers/process.ts";

let scratch: ScratchDatabase;
beforeAll(async () => {
  scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_migrate_cli");
});
afterAll(async () => {
  await scratch?.drop();
});

describe("incubator migrate", () => {
  it("applies every migration to an empty database, then applies none on a second run", async () => {
    const total = readMigrations().length;
    const first = spawnIncubator(["migrate"], { DATABASE_URL: scratch.url });
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain(`${total} migration(s) applied`);
    const client = new pg.Client({ connectionString: scratch.url });
    await client.connect();
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from "_prisma_migrations" where finished_at is not null`,
    );
    await client.end();
    expect(rows[0]!.n).toBe(total);
    const second = spawnIncubator(["migrate"], { DATABASE_URL: scratch.url });
    expect(await second.exited).toBe(0);
    expect(second.output()).toContain(`0 migration(s) applied, ${total} already applied`);
  }, 120_000);

  it("without DATABASE_URL exits 1 with one line naming it", async () => {
    const proc = spawnIncubator(["migrate"], { DATABASE_URL: "" });
    expect(await proc.exited).toBe(1);
    expect(proc.output().trim()).toMatch(/^incubator: DATABASE_URL: migrate needs the platform's database/);
  }, 60_000);
});
