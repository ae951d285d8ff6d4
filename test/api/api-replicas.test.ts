/**
 * Two API processes (`incubator serve --workers 0`, real child processes) on one PostgreSQL,
 * subscribers spread over both, events from the event writer (what workers call). Every
 * subscriber gets every event of its run once, in order; stopping one API process mid-stream
 * (SIGTERM: its sockets close with 1012) moves its clients to the other, where they resume with
 * `afterSeq` and lose nothing. Nothing is sticky: a client reconnects to whichever process
 * answers. Sized for CI (tens of subscribers); `incubator bench events --api-processes 2`
 * measures the same shape at thousands.
 */
import { createClient } from "graphql-ws";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { toGlobalId } from "../../src/api/global-id.ts";
import { SERVICE_RESTART } from "../../src/api/server.ts";
import { appendRunEvents, readRunEvents } from "../../src/platform/events/event-log.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent, runFinished } from "../helpers/events.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
const READY = /"ws":"(ws:\/\/[^"]+)"/;
const SUBSCRIBERS = 24;
const EVENTS_PER_RUN = 40;
const procs: Spawned[] = [];
afterAll(async () => {
  for (const proc of procs) proc.child.kill("SIGKILL");
});

async function startApi(): Promise<{ proc: Spawned; wsUrl: string }> {
  const proc = spawnIncubator(["serve", "--workers", "0"], {
    PORT: "0",
    HOST: "127.0.0.1",
    AUTH_MODE: "tokens",
    DATABASE_URL: t.url,
    LOG_LEVEL: "info",
  });
  procs.push(proc);
  return { proc, wsUrl: (await proc.waitFor(READY, 120_000))[1]! };
}

async function until(condition: () => boolean, what: string, timeoutMs = 120_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Watcher {
  runId: string;
  seqs: number[];
  closeCodes: number[];
  /** The address of the connection attempt in flight, and of the one acknowledged last. */
  dialling?: string;
  connectedTo?: string;
  ended?: "complete" | "error";
  dispose(): Promise<void>;
}

describe("two API processes on one database", () => {
  it("every subscriber gets every event once, in order, also when its API process stops mid-stream", async () => {
    const [a, b] = await Promise.all([startApi(), startApi()]);
    const urls = [a.wsUrl, b.wsUrl];
    const token = await mintToken(t.db, "VIEWER");
    const runs = [(await createRunRows(t.db)).run, (await createRunRows(t.db)).run];

    const watchers: Watcher[] = [];
    for (let i = 0; i < SUBSCRIBERS; i++) {
      const run = runs[i % runs.length]!;
      // No stickiness: each connection attempt takes the next address, as a load balancer may.
      let attempt = i % 2;
      const watcher: Watcher = { runId: run.id, seqs: [], closeCodes: [], dispose: async () => {} };
      const client = createClient({
        url: () => {
          watcher.dialling = urls[attempt++ % urls.length]!;
          return watcher.dialling;
        },
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        retryAttempts: 50,
        retryWait: () => new Promise((r) => setTimeout(r, 100)),
        shouldRetry: () => true, // a refused connection to the stopped process, too
        on: {
          connected: () => {
            watcher.connectedTo = watcher.dialling;
          },
          closed: (event) => watcher.closeCodes.push((event as { code: number }).code),
        },
      });
      // graphql-ws resubscribes with this same object: afterSeq follows what arrived.
      const variables = { runId: toGlobalId("Run", run.id), afterSeq: 0 };
      client.subscribe<{ runEvents: { seq: number } }>(
        {
          query:
            "subscription ($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, afterSeq: $afterSeq) { seq type } }",
          variables,
        },
        {
          next: ({ data }) => {
            watcher.seqs.push(data!.runEvents.seq);
            variables.afterSeq = data!.runEvents.seq;
          },
          error: () => {
            watcher.ended = "error";
          },
          complete: () => {
            watcher.ended = "complete";
          },
        },
      );
      watcher.dispose = async () => {
        await client.dispose();
      };
      watchers.push(watcher);
    }
    try {
      // Every subscriber live: a first event reaches all of them.
      await Promise.all(runs.map((run) => appendRunEvents(t.db, run.id, [progressEvent(0, 0)])));
      await until(() => watchers.every((w) => w.seqs.length >= 1), "every subscriber's first event");

      let stopped: Promise<number | null> | undefined;
      // Who was on the stopped process: about half, not exactly (a handshake that timed out on a
      // loaded machine retried on the other address).
      let onStopped: Watcher[] = [];
      for (let step = 1; step < EVENTS_PER_RUN; step++) {
        await Promise.all(runs.map((run) => appendRunEvents(t.db, run.id, [progressEvent(step % 4, step)])));
        if (step === EVENTS_PER_RUN / 2) {
          onStopped = watchers.filter((w) => w.connectedTo === a.wsUrl);
          a.proc.child.kill("SIGTERM"); // mid-stream; the writer goes on
          stopped = a.proc.exited;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await stopped).toBe(0);
      await Promise.all(runs.map((run) => appendRunEvents(t.db, run.id, [runFinished])));
      await until(() => watchers.every((w) => w.ended !== undefined), "every stream's end");

      for (const run of runs) {
        const table = (await readRunEvents(t.db, run.id, 0)).map((r) => r.seq);
        expect(table).toHaveLength(EVENTS_PER_RUN + 1);
        for (const watcher of watchers.filter((w) => w.runId === run.id)) {
          expect(watcher.ended).toBe("complete");
          expect(watcher.seqs).toEqual(table);
        }
      }
      // The subscribers on the stopped process were told to retry (1012) and moved over.
      const moved = watchers.filter((w) => w.closeCodes.includes(SERVICE_RESTART));
      expect(onStopped.length).toBeGreaterThan(0);
      expect(moved).toEqual(onStopped);
    } finally {
      await Promise.all(watchers.map((w) => w.dispose()));
      b.proc.child.kill("SIGTERM");
      await b.proc.exited;
    }
  }, 300_000);
});
