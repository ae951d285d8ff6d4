/**
 * Subscribers of `incubator bench events` (forked, IPC): `count` graphql-ws clients, each its
 * own WebSocket connection (a browser tab, a wall screen), spread round-robin over the API
 * processes and the runs. Receipt times are taken here; the writer's commit times arrive by IPC
 * (`commit`), possibly after the event itself, so receipts wait for their commit time. Latencies
 * go back as a histogram of 0.1 ms buckets.
 */
import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";

interface Start {
  wsUrls: string[];
  runIds: string[];
  /** Global index of this process's first subscriber (spreads processes evenly). */
  offset: number;
  count: number;
  query: string;
}

type Request =
  | { type: "commit"; runId: string; seq: number; at: number }
  | { type: "timing"; on: boolean }
  | { type: "collect" }
  | { type: "stop" };

const send = (message: unknown) => process.send?.(message);
const now = () => performance.timeOrigin + performance.now();

process.once("message", async (start: Start) => {
  const commits = new Map<string, number>(); // `${runId}:${seq}` → commit time
  const waiting = new Map<string, number[]>(); // receipts whose commit time has not arrived
  const histogram = new Map<number, number>();
  let deliveries = 0;
  let timing = false;
  let errors = 0;
  let reconnects = 0;
  let gaveUp = 0;
  let ready = 0;
  const record = (latency: number) => {
    const bucket = Math.round(latency * 10);
    histogram.set(bucket, (histogram.get(bucket) ?? 0) + 1);
    deliveries++;
  };

  const clients: Client[] = [];
  for (let i = 0; i < start.count; i++) {
    const n = start.offset + i;
    const url = start.wsUrls[n % start.wsUrls.length]!;
    const runId = start.runIds[n % start.runIds.length]!;
    // A viewer that loses its connection (a handshake timed out on a loaded machine) comes
    // back with its last seq, as a real client does; reconnects are counted and reported.
    const variables = { runId, afterSeq: 0 };
    let connections = 0;
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 60,
      shouldRetry: () => true,
      retryWait: () => new Promise((r) => setTimeout(r, 200 + Math.random() * 800)),
      onNonLazyError: () => {},
      on: {
        connected: () => {
          if (++connections > 1) reconnects++;
        },
      },
    });
    clients.push(client);
    let first = true;
    client.subscribe<{ runEvents: { seq: number } }>(
      { query: start.query, variables },
      {
        next: ({ data }) => {
          const at = now();
          if (data) variables.afterSeq = data.runEvents.seq;
          if (first) {
            first = false;
            if (++ready === start.count) send({ type: "ready", gaveUp });
          }
          if (!timing || !data) return;
          const key = `${runId}:${data.runEvents.seq}`;
          const committed = commits.get(key);
          if (committed !== undefined) record(at - committed);
          else waiting.set(key, [...(waiting.get(key) ?? []), at]);
        },
        error: () => {
          errors++;
          // One that never got going (its retries spent on a loaded machine) is reported, not waited for.
          if (first) {
            first = false;
            gaveUp++;
            if (++ready === start.count) send({ type: "ready", gaveUp });
          }
        },
        complete: () => {},
      },
    );
    // Connect in steps, as real viewers arrive, not 10,000 handshakes in one tick.
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
  }

  process.on("message", async (request: Request) => {
    if (request.type === "commit") {
      const key = `${request.runId}:${request.seq}`;
      commits.set(key, request.at);
      for (const at of waiting.get(key) ?? []) record(at - request.at);
      waiting.delete(key);
    } else if (request.type === "timing") {
      timing = request.on;
    } else if (request.type === "collect") {
      send({
        type: "collected",
        deliveries,
        errors,
        reconnects,
        histogram: [...histogram],
        unmatched: waiting.size,
      });
      histogram.clear();
      deliveries = 0;
    } else if (request.type === "stop") {
      await Promise.all(clients.map((c) => c.dispose()));
      send({ type: "stopped" });
      process.exit(0);
    }
  });
  send({ type: "started" });
});
