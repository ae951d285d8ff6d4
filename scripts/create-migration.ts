/**
 * Create a Prisma migration offline: apply prisma/migrations/ to a scratch database, diff it
 * against prisma/schema.prisma with Prisma's WebAssembly schema engine, and write the SQL to
 * prisma/migrations/<timestamp>_<name>/migration.sql — the standard layout, so the ordinary
 * `prisma migrate deploy` works on it too. Usage: npm run db:migration -- <name>
 *
 * Needs a PostgreSQL server for the scratch database: DATABASE_URL's, or the embedded one.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withDatabase } from "../src/platform/db/database.ts";
import { migrate } from "../src/platform/db/migrate.ts";
import { diffSchemaToSql, MIGRATION_LOCK } from "../src/platform/db/schema-engine.ts";
import { createScratchDatabase } from "../src/platform/db/scratch.ts";

const name = (process.argv[2] ?? "").replace(/[^a-zA-Z0-9_]+/g, "_");
if (!name) {
  console.error("usage: npm run db:migration -- <name>   (e.g. add_checkpoint_table)");
  process.exit(2);
}

await withDatabase({ dataDir: ".data" }, async (serverUrl) => {
  const scratch = await createScratchDatabase(serverUrl, "migration_scratch");
  try {
    await migrate(scratch.url, join("prisma", "migrations"));
    const sql = await diffSchemaToSql(scratch.url);
    if (!sql.trim() || /^-- This is an empty migration/.test(sql.trim())) {
      console.log("schema.prisma matches the migrations; nothing to create");
      return;
    }
    const stamp = new Date()
      .toISOString()
      .replace(/[-:TZ.]/g, "")
      .slice(0, 14);
    const dir = join("prisma", "migrations", `${stamp}_${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "migration.sql"), sql);
    writeFileSync(join("prisma", "migrations", "migration_lock.toml"), MIGRATION_LOCK);
    console.log(`wrote ${join(dir, "migration.sql")}`);
  } finally {
    await scratch.drop();
  }
});
process.exit(0); // the Wasm engine leaves 10 s and 60 s timers armed
