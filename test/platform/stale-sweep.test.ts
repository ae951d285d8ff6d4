/**
 * The stale-job sweep across a database outage. The sweeper and a "live worker" reach the test
 * database through a TCP proxy this test owns: stopping the proxy is the outage (the shared
 * PostgreSQL keeps running). Before the fix, the first sweep after an outage longer than
 * `staleAfterMs` handed every live job back to the queue.
 */
import { createServer, type Server, Socket } from "node:net";
import type PgBoss from "pg-boss";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../../src/platform/db/client.ts";
import { Dispatcher } from "../../src/platform/dispatch/dispatcher.ts";
import { StaleJobSweeper, staleCutoff } from "../../src/platform/dispatch/stale-sweep.ts";
import { openQueue } from "../../src/platform/queue/queue.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
const STALE_AFTER_MS = 2000;
const INTERVAL_MS = 400; // an outage is a gap of over 800 ms between successful sweeps
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Forwards TCP to the database; `stop` refuses and cuts connections, `start` serves again. */
class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = new Socket();
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("close", () => this.sockets.delete(s));
        s.on("error", () => {});
      }
      upstream.connect(this.target.port, this.target.host);
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((r) => server.listen(this.port, "127.0.0.1", r));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  }
}

let proxy: TcpProxy;
let proxied: Db;
let boss: PgBoss;
let sweeper: StaleJobSweeper;

beforeAll(async () => {
  const url = new URL(t.url);
  proxy = new TcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
  await proxy.start();
  url.hostname = "127.0.0.1";
  url.port = String(proxy.port);
  proxied = createDb(url.toString());
  boss = await openQueue(t.url);
  // The sweeper's dispatcher and probe both go through the proxy.
  sweeper = new StaleJobSweeper({
    dispatcher: new Dispatcher(proxied, boss, pino({ level: "silent" })),
    db: proxied,
    staleAfterMs: STALE_AFTER_MS,
    logger: pino({ level: "silent" }),
    intervalMs: INTERVAL_MS,
  });
});

afterAll(async () => {
  await proxied?.$disconnect();
  await proxy?.stop();
  await boss?.stop({ graceful: false });
});

/** A RUNNING job whose last heartbeat was `ageMs` ago (by the database's clock). */
async function runningJob(ageMs: number): Promise<string> {
  const { run } = await createRunRows(t.db);
  const job = await t.db.job.create({
    data: { runId: run.id, stage: "E2E", spec: {}, state: "RUNNING", workerId: "w", attempts: 1 },
  });
  await t.db
    .$executeRaw`UPDATE job SET heartbeat_at = (now() - make_interval(secs => ${ageMs / 1000}::double precision)) AT TIME ZONE 'UTC' WHERE id = ${job.id}::uuid`;
  return job.id;
}

const stateOf = async (id: string) => (await t.db.job.findUniqueOrThrow({ where: { id } })).state;

/** A worker heartbeating through the proxy, as the lifecycle does; its beats fail in an outage. */
function heartbeating(jobId: string): { stop(): void; paused: boolean } {
  const handle = { paused: false, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    if (handle.paused) return;
    void proxied.job.update({ where: { id: jobId }, data: { heartbeatAt: new Date() } }).catch(() => {});
  }, 250);
  return handle;
}

/** Sweep every interval for `ms`; returns every job id handed back (failed sweeps count none). */
async function sweepFor(ms: number): Promise<string[]> {
  const handedBack: string[] = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    handedBack.push(...(await sweeper.sweep().catch(() => [])));
    await sleep(INTERVAL_MS / 4); // well inside the gap allowed, also on a loaded machine
  }
  return handedBack;
}

describe("the stale-job sweep", () => {
  it("takes the cutoff from the database's clock", async () => {
    const dbNow = async () => new Date((await t.db.$queryRaw<{ now: Date }[]>`SELECT now() AS now`)[0]!.now);
    const before = await dbNow();
    const cutoff = await staleCutoff(t.db, 30_000);
    const after = await dbNow();
    expect(cutoff.getTime()).toBeGreaterThanOrEqual(before.getTime() - 30_000 - 1);
    expect(cutoff.getTime()).toBeLessThanOrEqual(after.getTime() - 30_000 + 1);
  });

  it("judges only after a full healthy window: not at start, not after an outage or a pause", async () => {
    const live = await runningJob(0);
    const worker = heartbeating(live);
    try {
      // At start the window is empty: a job silent for an hour waits for a full window too.
      const dead = await runningJob(3600_000);
      expect(await sweeper.sweep()).toEqual([]);
      expect(await stateOf(dead)).toBe("RUNNING");
      const first = await sweepFor(STALE_AFTER_MS + 4 * INTERVAL_MS);
      expect(first).toEqual([dead]);
      expect(await stateOf(dead)).not.toBe("RUNNING"); // FAILED here: it has no queue message to retry

      // An outage longer than staleAfterMs: the live worker's heartbeats cannot land either.
      const deadDuringOutage = await runningJob(0); // its worker dies as the outage begins
      await proxy.stop();
      await expect(sweeper.sweep()).rejects.toThrow();
      await sleep(STALE_AFTER_MS + 1000);
      await proxy.start();
      // Right after: every heartbeat is older than staleAfterMs, and still nobody is judged.
      const [row] = await t.db.$queryRaw<{ age: number }[]>`
        SELECT extract(epoch FROM (now() AT TIME ZONE 'UTC') - heartbeat_at) * 1000 AS age
        FROM job WHERE id = ${live}::uuid`;
      expect(Number(row!.age)).toBeGreaterThan(STALE_AFTER_MS);
      expect(await sweeper.sweep()).toEqual([]);
      // Within the window only the job whose worker really stopped goes back, once.
      const after = await sweepFor(STALE_AFTER_MS + 4 * INTERVAL_MS);
      expect(after).toEqual([deadDuringOutage]);
      expect(await stateOf(live)).toBe("RUNNING");

      // This process paused (no sweeps, and its own heartbeats stalled) longer than the window.
      worker.paused = true;
      await sleep(STALE_AFTER_MS + 500);
      worker.paused = false;
      expect(await sweeper.sweep()).toEqual([]);
      expect(await sweepFor(STALE_AFTER_MS + 4 * INTERVAL_MS)).toEqual([]);
      expect(await stateOf(live)).toBe("RUNNING");
    } finally {
      worker.stop();
    }
  }, 60_000);
});
