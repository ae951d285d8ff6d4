/**
 * Applies prisma/migrations/ at start-up, offline.
 *
 * `prisma migrate deploy` needs a native schema engine that Prisma downloads, which these
 * machines cannot fetch. Deploying needs no diffing, only "run each new migration.sql once, in
 * order, and remember it", so we do that here with the very bookkeeping Prisma uses: the
 * `_prisma_migrations` table, same columns, checksum = sha256 of the file. A user with internet
 * can therefore run the ordinary `prisma migrate deploy` / `migrate status` on the same
 * database and folder and see the same history.
 */
import { createHash, randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import pg from "pg";
import { ADVISORY_LOCK, withAdvisoryLock } from "./advisory-lock.ts";

export const DEFAULT_MIGRATIONS_DIR = resolve(import.meta.dirname, "../../../prisma/migrations");

const CREATE_HISTORY_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum"            VARCHAR(64) NOT NULL,
  "finished_at"         TIMESTAMPTZ,
  "migration_name"      VARCHAR(255) NOT NULL,
  "logs"                TEXT,
  "rolled_back_at"      TIMESTAMPTZ,
  "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir = DEFAULT_MIGRATIONS_DIR): MigrationFile[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: createHash("sha256").update(sql).digest("hex") };
    });
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

/** Apply every migration not yet recorded; each in its own transaction. */
export async function migrate(databaseUrl: string, dir = DEFAULT_MIGRATIONS_DIR): Promise<MigrateResult> {
  const migrations = readMigrations(dir);
  // One migrator at a time: API replicas, workers and test files start together.
  return withAdvisoryLock(databaseUrl, ADVISORY_LOCK.MIGRATIONS, async (client) => {
    await client.query(CREATE_HISTORY_TABLE);
    const { rows } = await client.query<{
      migration_name: string;
      checksum: string;
      finished_at: Date | null;
    }>(`select migration_name, checksum, finished_at from "_prisma_migrations" where rolled_back_at is null`);
    const done = new Map(rows.map((row) => [row.migration_name, row]));
    const applied: string[] = [];
    for (const migration of migrations) {
      const previous = done.get(migration.name);
      if (previous) {
        if (!previous.finished_at) {
          throw new Error(
            `migration ${migration.name} failed earlier and is marked unfinished in _prisma_migrations; ` +
              "fix the database, then delete that row (or `prisma migrate resolve`) and start again",
          );
        }
        if (previous.checksum !== migration.checksum) {
          throw new Error(
            `migration ${migration.name} was edited after it was applied (checksum differs); ` +
              "create a new migration instead of editing an applied one",
          );
        }
        continue;
      }
      const id = randomUUID();
      await client.query("begin");
      try {
        await client.query(migration.sql);
        await client.query(
          `insert into "_prisma_migrations" (id, checksum, migration_name, finished_at, applied_steps_count)
           values ($1, $2, $3, now(), 1)`,
          [id, migration.checksum, migration.name],
        );
        await client.query("commit");
      } catch (error) {
        await client.query("rollback");
        throw new Error(`migration ${migration.name} failed: ${(error as Error).message}`);
      }
      applied.push(migration.name);
    }
    return { applied, alreadyApplied: migrations.length - applied.length };
  });
}

export interface MigrationStatus {
  /** Migrations in the folder that the database has finished. */
  applied: number;
  /** Migrations in the folder that it has not (`serve` applies them at start). */
  pending: string[];
}

/** Which of the folder's migrations a database has applied; reads only, takes no lock. */
export async function migrationStatus(
  databaseUrl: string,
  dir = DEFAULT_MIGRATIONS_DIR,
): Promise<MigrationStatus> {
  const names = readMigrations(dir).map((m) => m.name);
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rows: table } = await client.query<{ present: boolean }>(
      `select to_regclass('"_prisma_migrations"') is not null as present`,
    );
    if (!table[0]?.present) return { applied: 0, pending: names };
    const { rows } = await client.query<{ migration_name: string }>(
      `select migration_name from "_prisma_migrations" where finished_at is not null and rolled_back_at is null`,
    );
    const done = new Set(rows.map((r) => r.migration_name));
    return { applied: names.filter((n) => done.has(n)).length, pending: names.filter((n) => !done.has(n)) };
  } finally {
    await client.end().catch(() => {});
  }
}
