/**
 * An API restart under an open `runEvents` subscription: the server closes the socket with a
 * code graphql-ws clients retry on (1012), never completing the stream, and a client that keeps
 * `afterSeq` at its last seq resumes on the restarted server and receives every event once, in
 * order. Real server (stopped and started again on the same port), real graphql-ws client.
 */
import { createClient } from "graphql-ws";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { toGlobalId } from "../../src/api/global-id.ts";
import { type ApiServer, SERVICE_RESTART, startApiServer } from "../../src/api/server.ts";
import { RunEventHub } from "../../src/platform/events/event-hub.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent, runFinished } from "../helpers/events.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
const logger = pino({ level: "silent" });
let server: ApiServer | undefined;
afterAll(async () => {
  await server?.close();
});

const start = (port: number) =>
  startApiServer({ db: t.db, databaseUrl: t.url, logger, port, host: "127.0.0.1", auth: "tokens" });
const progress = (step: number) => progressEvent(0, step);
const finished = runFinished;

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("runEvents across an API restart", () => {
  it("the client is told to retry, resumes with afterSeq, and sees every event once, in order", async () => {
    const { run } = await createRunRows(t.db);
    await appendRunEvents(t.db, run.id, [progress(1), progress(2), progress(3)]);
    server = await start(0);
    const port = Number(new URL(server.url).port);

    const closeCodes: number[] = [];
    const token = await mintToken(t.db, "VIEWER");
    const client = createClient({
      url: server.wsUrl,
      connectionParams: { authorization: `Bearer ${token}` },
      webSocketImpl: WebSocket,
      retryAttempts: 50,
      retryWait: () => new Promise((r) => setTimeout(r, 100)),
      // graphql-ws retries a closed socket (1012 included) by default, but not a refused
      // connection (an error event): a client that rides out restarts retries those too.
      shouldRetry: () => true,
      on: { closed: (event) => closeCodes.push((event as { code: number }).code) },
    });
    // graphql-ws sends the same variables object again when it resubscribes: keeping afterSeq
    // at the last seq received is how a client resumes.
    const variables = { runId: toGlobalId("Run", run.id), afterSeq: 0 };
    const seqs: number[] = [];
    let ended: "complete" | "error" | undefined;
    client.subscribe<{ runEvents: { seq: number } }>(
      {
        query:
          "subscription ($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, afterSeq: $afterSeq) { seq } }",
        variables,
      },
      {
        next: ({ data }) => {
          seqs.push(data!.runEvents.seq);
          variables.afterSeq = data!.runEvents.seq;
        },
        error: () => {
          ended = "error";
        },
        complete: () => {
          ended = "complete";
        },
      },
    );
    try {
      await until(() => seqs.length === 3, "the first three events");

      await server.close(); // what SIGTERM does (cli/shutdown.ts → local.close → api.close)
      server = undefined;
      expect(closeCodes).toContain(SERVICE_RESTART);
      expect(ended).toBeUndefined(); // not completed: the client is retrying
      await appendRunEvents(t.db, run.id, [progress(4), progress(5)]); // while no API runs

      server = await start(port);
      await appendRunEvents(t.db, run.id, [progress(6), progress(7), finished]);
      await until(() => ended !== undefined, "the end of the stream");
      expect(ended).toBe("complete"); // by the run's final state, not by the restart
      expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      await client.dispose();
    }
  }, 60_000);

  it("an event hub that closes under a waiting subscriber ends its stream with an error", async () => {
    const { run } = await createRunRows(t.db);
    const hub = new RunEventHub({ db: t.db, databaseUrl: t.url, logger });
    await hub.start();
    const stream = hub.subscribe(run.id);
    const next = stream.next(); // waiting: nothing to read yet
    await new Promise((r) => setTimeout(r, 200));
    const outcome = expect(next).rejects.toThrow(/shutting down; resubscribe with afterSeq/);
    await hub.close();
    await outcome;
  });
});
