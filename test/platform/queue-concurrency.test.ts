/**
 * API replicas and workers start at the same time against one database, and each creates the
 * training queues it needs (one per placement). pg-boss's `create_queue` inserts the queue row
 * and then adds foreign keys to it; two creators at once deadlock in PostgreSQL ("deadlock
 * detected" stopped an API replica in CI). These run the creators truly concurrently.
 */
import type PgBoss from "pg-boss";
import { afterAll, describe, expect, it } from "vitest";
import { ensureTrainQueue, openQueue, TRAIN_QUEUE, trainQueueNames } from "../../src/platform/queue/queue.ts";
import { useTestDatabase } from "../helpers/database.ts";

const t = useTestDatabase();
const bosses: PgBoss[] = [];
afterAll(async () => {
  await Promise.all(bosses.map((b) => b.stop({ graceful: false, wait: true })));
});

describe("creating training queues from several processes at once", () => {
  it("four queue clients opening together on an empty pg-boss schema all start", async () => {
    const opened = await Promise.all([0, 1, 2, 3].map(() => openQueue(t.url)));
    bosses.push(...opened);
    expect(await trainQueueNames(opened[0]!)).toEqual([TRAIN_QUEUE]);
  });

  it("the same and different placement queues created at once from every client all exist once", async () => {
    const names = Array.from({ length: 6 }, (_, i) => `${TRAIN_QUEUE}-concurrent-${i}`);
    // Every client creates every queue, all at once, in a different order each.
    await Promise.all(
      bosses.flatMap((boss, b) =>
        names.map((_, i) => ensureTrainQueue(boss, names[(i + b) % names.length]!)),
      ),
    );
    const existing = await trainQueueNames(bosses[0]!);
    expect(existing.sort()).toEqual([TRAIN_QUEUE, ...names].sort());
  });
});
