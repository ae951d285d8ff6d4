/**
 * `incubator bench events`: progress-event latency from the writer's commit to a graphql-ws
 * subscriber's receipt, with 1, 100 and 1,000 concurrent subscribers on one run.
 *
 * The writer appends PROGRESS events (as a worker does) carrying their write time; every
 * subscriber (its own WebSocket connection) records the receipt time. Reported: p50/p99/max over
 * all (event, subscriber) pairs. Everything runs on this machine, against loopback only.
 */
import { createClient } from "graphql-ws";
import pino from "pino";
import WebSocket from "ws";
import { toGlobalId } from "../src/api/global-id.ts";
import { startApiServer } from "../src/api/server.ts";
import { createDb } from "../src/platform/db/client.ts";
import { openDatabase } from "../src/platform/db/database.ts";
import { migrate } from "../src/platform/db/migrate.ts";
import { createScratchDatabase } from "../src/platform/db/scratch.ts";
import { appendRunEvents } from "../src/platform/events/event-log.ts";
import { createArchitectureAndDataset } from "../test/helpers/rows.ts";

export interface EventLatencyResult {
  subscribers: number;
  events: number;
  deliveries: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

export async function measureEventLatency(
  counts: number[],
  opts: { events: number; intervalMs: number; dataDir: string },
): Promise<EventLatencyResult[]> {
  const server = await openDatabase({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: opts.dataDir,
    ephemeral: true,
  });
  const scratch = await createScratchDatabase(server.url, "incubator_bench_events");
  await migrate(scratch.url);
  const db = createDb(scratch.url);
  const api = await startApiServer({
    db,
    databaseUrl: scratch.url,
    logger: pino({ level: "silent" }),
    port: 0,
    host: "127.0.0.1",
  });
  const results: EventLatencyResult[] = [];
  try {
    // The same small architecture/dataset rows the tests use: events need a run to belong to.
    const { architecture: arch, dataset } = await createArchitectureAndDataset(db, { name: "bench" });
    for (const count of counts) {
      const run = await db.run.create({
        data: { kind: "INCUBATION", architectureId: arch.id, datasetId: dataset.id },
      });
      const latencies: number[] = [];
      let subscribed = 0;
      const clients = Array.from({ length: count }, () =>
        createClient({ url: api.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false }),
      );
      const ready = clients.map(
        (client) =>
          new Promise<void>((resolve) => {
            let first = true;
            client.subscribe<{ runEvents: { seq: number; type: string; message?: string } }>(
              {
                // The timed events are log lines carrying the writer's clock (Date.now() as text).
                query: `subscription ($runId: ID!) { runEvents(runId: $runId) { seq type ... on LogMessage { message } } }`,
                variables: { runId: toGlobalId("Run", run.id) },
              },
              {
                next: (message) => {
                  const { message: text } = message.data!.runEvents;
                  if (first) {
                    first = false;
                    subscribed++;
                    resolve();
                    return; // the warm-up event
                  }
                  if (!text || text === "warm-up") return;
                  latencies.push(Date.now() - Number(text));
                },
                error: () => resolve(),
                complete: () => resolve(),
              },
            );
          }),
      );
      // A warm-up event tells us every subscriber is live before timing starts.
      const warm = setInterval(() => {
        void appendRunEvents(db, run.id, [{ type: "LOG", level: "INFO", message: "warm-up" }]);
      }, 200);
      await Promise.all(ready);
      clearInterval(warm);
      latencies.length = 0;
      for (let i = 0; i < opts.events; i++) {
        await appendRunEvents(db, run.id, [
          { type: "LOG", level: "INFO", moduleIndex: i % 4, message: String(Date.now()) },
        ]);
        await new Promise((r) => setTimeout(r, opts.intervalMs));
      }
      const expected = opts.events * subscribed;
      const deadline = Date.now() + 10_000;
      while (latencies.length < expected && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      await Promise.all(clients.map((c) => c.dispose()));
      const sorted = [...latencies].sort((a, b) => a - b);
      results.push({
        subscribers: count,
        events: opts.events,
        deliveries: latencies.length,
        p50_ms: percentile(sorted, 50),
        p99_ms: percentile(sorted, 99),
        max_ms: sorted.at(-1) ?? Number.NaN,
      });
    }
  } finally {
    await api.close();
    await db.$disconnect();
    await scratch.drop();
    await server.stop();
  }
  return results;
}
