/**
 * Run one piece of schema work at a time across every process on the database (API replicas,
 * workers, test files): a session-level advisory lock on a dedicated connection, held for the
 * duration of `work` and released even when it throws.
 */
import pg from "pg";

/** Arbitrary constants, one per kind of schema work, so unrelated work does not wait on it. */
export const ADVISORY_LOCK = {
  /** Applying prisma/migrations (db/migrate.ts). */
  MIGRATIONS: 7_245_019_331,
  /**
   * Creating a pg-boss queue (queue/queue.ts): pg-boss's `create_queue` inserts the queue row and
   * then adds foreign keys to that table, so two creators at once deadlock in PostgreSQL.
   */
  QUEUE_CREATION: 7_245_019_332,
} as const;

export async function withAdvisoryLock<T>(
  databaseUrl: string,
  key: (typeof ADVISORY_LOCK)[keyof typeof ADVISORY_LOCK],
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [key]);
    try {
      return await work(client);
    } finally {
      await client.query("select pg_advisory_unlock($1)", [key]).catch(() => {});
    }
  } finally {
    await client.end();
  }
}
