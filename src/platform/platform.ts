/**
 * Bring up what every process of the platform needs (API server, worker, demo): the database
 * (external or embedded), its migrations, and the Prisma client — and take it down again in
 * the right order.
 */
import { createDb, type Db } from "./db/client.ts";
import { type DatabaseHandle, openDatabase, redactUrl } from "./db/database.ts";
import { migrate } from "./db/migrate.ts";
import type { Logger } from "./logger.ts";

export interface Platform {
  db: Db;
  database: DatabaseHandle;
  close(): Promise<void>;
}

export async function openPlatform(options: {
  databaseUrl?: string | undefined;
  dataDir: string;
  logger: Logger;
}): Promise<Platform> {
  const { logger } = options;
  const database = await openDatabase({
    databaseUrl: options.databaseUrl,
    dataDir: options.dataDir,
    log: (message) => logger.debug({ component: "embedded-postgres" }, message),
  });
  try {
    logger.info(
      { database: redactUrl(database.url), embedded: database.embedded },
      database.embedded ? "started embedded PostgreSQL" : "using DATABASE_URL",
    );
    const result = await migrate(database.url);
    if (result.applied.length) logger.info({ applied: result.applied }, "applied migrations");
    const db = createDb(database.url);
    await db.$connect();
    return {
      db,
      database,
      close: async () => {
        await db.$disconnect();
        await database.stop();
      },
    };
  } catch (error) {
    await database.stop();
    throw error;
  }
}
