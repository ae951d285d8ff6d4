/**
 * A migrated scratch database for one benchmark: on DATABASE_URL's server, or on an embedded
 * PostgreSQL under `dataDir` when it is unset; `close` drops it and stops what it started.
 */
import { createDb, type Db } from "../src/platform/db/client.ts";
import { openDatabase } from "../src/platform/db/database.ts";
import { migrate } from "../src/platform/db/migrate.ts";
import { createScratchDatabase } from "../src/platform/db/scratch.ts";

export interface BenchDatabase {
  url: string;
  db: Db;
  close(): Promise<void>;
}

export async function openBenchDatabase(dataDir: string, name: string): Promise<BenchDatabase> {
  const server = await openDatabase({ databaseUrl: process.env.DATABASE_URL, dataDir, ephemeral: true });
  const scratch = await createScratchDatabase(server.url, name);
  await migrate(scratch.url);
  const db = createDb(scratch.url);
  return {
    url: scratch.url,
    db,
    async close() {
      await db.$disconnect();
      await scratch.drop();
      await server.stop();
    },
  };
}
