/**
 * One API process of `incubator bench events` (forked, IPC). It starts the API server of the
 * source tree it is given (`apiSrc`: this checkout's `src`, or an older build's for before/after
 * pairs) on the bench's database, and answers the orchestrator's questions: what GC pauses and
 * event-loop delay cost during the timed window, what the event delivery cost (`eventStats`,
 * when that build has it), and memory after a full GC (for memory per idle subscription).
 *
 * Run with `--expose-gc` and tsx (bench/events.ts forks it so).
 */
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import pino from "pino";

interface Start {
  apiSrc: string;
  databaseUrl: string;
}

type Request =
  | { type: "reset" }
  | { type: "stats" }
  | { type: "memory" }
  | { type: "progress" }
  | { type: "stop" };

const PROGRESS_EVERY_MS = 5_000;

// Once the orchestrator is gone (it failed and is exiting) there is no one to tell.
const send = (message: unknown) => {
  if (process.connected) process.send?.(message);
};

process.once("message", async (start: Start) => {
  const { startApiServer } = await import(`${start.apiSrc}/api/server.ts`);
  const { createDb } = await import(`${start.apiSrc}/platform/db/client.ts`);
  const db = createDb(start.databaseUrl);
  const api = await startApiServer({
    db,
    databaseUrl: start.databaseUrl,
    logger: pino({ level: "silent" }),
    port: 0,
    host: "127.0.0.1",
    auth: "local",
    // One machine plays thousands of viewers from one address: lift the per-caller limits.
    limits: { rateLimitPerSecond: 1e9, rateLimitBurst: 1e9, maxWsConnectionsPerToken: 1e9 },
  });

  let gc = { count: 0, totalMs: 0, maxMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.count++;
      gc.totalMs += entry.duration;
      if (entry.duration > gc.maxMs) gc.maxMs = entry.duration;
    }
  }).observe({ entryTypes: ["gc"] });
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  const eventStats = () => (typeof api.eventStats === "function" ? api.eventStats() : null);
  const snapshot = () =>
    JSON.parse(JSON.stringify(eventStats())) as Record<string, Record<string, number>> | null;
  let before = snapshot();
  let cpuAtReset = process.cpuUsage();

  // The connect phase, observable: sockets and subscriptions every few seconds while they change.
  const progress = () => {
    const live = eventStats();
    return {
      openConnections: live?.transport.openConnections ?? -1,
      acceptedConnections: live?.transport.acceptedConnections ?? -1,
      liveSubscriptions: live?.subscribers ?? -1,
      replayReads: live?.hub.replayReads ?? -1,
    };
  };
  let lastLine = "";
  const reporter = setInterval(() => {
    const p = progress();
    const line =
      `${p.openConnections} sockets open (${p.acceptedConnections} accepted), ` +
      `${p.liveSubscriptions} live subscriptions, ${p.replayReads} replay reads`;
    if (line !== lastLine) process.stderr.write(`[bench api ${process.pid}] ${line}\n`);
    lastLine = line;
  }, PROGRESS_EVERY_MS);
  reporter.unref();

  process.on("message", async (request: Request) => {
    if (request.type === "reset") {
      gc = { count: 0, totalMs: 0, maxMs: 0 };
      loopDelay.reset();
      const live = eventStats();
      if (live) {
        // The worst cases are per window: start them again.
        live.hub.maxNoticeToRowsMs = 0;
        live.transport.maxFlushMs = 0;
        live.transport.maxBufferedBytes = 0;
      }
      before = snapshot();
      cpuAtReset = process.cpuUsage();
      send({ type: "reset" });
    } else if (request.type === "stats") {
      const cpu = process.cpuUsage(cpuAtReset);
      send({
        type: "stats",
        cpuMs: (cpu.user + cpu.system) / 1000,
        gc,
        loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
        loopDelayMaxMs: loopDelay.max / 1e6,
        before,
        after: snapshot(),
      });
    } else if (request.type === "memory") {
      global.gc?.();
      await new Promise((r) => setTimeout(r, 50));
      global.gc?.();
      const { heapUsed, rss } = process.memoryUsage();
      const subscribers = eventStats()?.subscribers ?? null;
      send({ type: "memory", heapUsed, rss, subscribers });
    } else if (request.type === "progress") {
      send({ type: "progress", ...progress() });
    } else if (request.type === "stop") {
      await api.close();
      await db.$disconnect();
      send({ type: "stopped" });
      process.exit(0);
    }
  });
  send({ type: "ready", wsUrl: api.wsUrl });
});
