/**
 * Subscribers of `incubator bench events` (forked, IPC): `count` graphql-ws clients, each its
 * own WebSocket connection (a browser tab, a wall screen), spread round-robin over the API
 * processes and the runs. Receipt times are taken here; the writer's commit times arrive by IPC
 * (`commit`), possibly after the event itself, so receipts wait for their commit time. Latencies
 * go back as a histogram of 0.1 ms buckets.
 *
 * The connect phase is bounded and observable: at most `MAX_CONNECTING` subscribers of this
 * process are between "socket opening" and "first event" at once (a storm of 5,000 handshakes
 * in one second only timed out against graphql-ws's connection_init wait and retried), and the
 * counts — opened, acknowledged, subscribed, given up, closes by code — go to stderr and to the
 * orchestrator (`progress`) every few seconds, so a stalled phase names what stalled.
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
  /** Per run (as `runIds`): the seq to subscribe after, so each subscriber replays the last warm-up event or two, not the run's whole log. */
  afterSeqs: number[];
}

/** Subscribers of one process between opening their socket and their first event, at most. */
const MAX_CONNECTING = 100;
const PROGRESS_EVERY_MS = 5_000;

/** Where this process's subscribers are in the connect phase (also sent as `progress`). */
export interface ConnectProgress {
  count: number;
  /** Sockets opened (reconnects included), acknowledged by connection_ack, subscribers with a first event. */
  opened: number;
  acked: number;
  subscribed: number;
  /** Subscribers whose retries are spent; they are reported, not waited for. */
  gaveUp: number;
  reconnects: number;
  /** Socket closes by `code reason`, e.g. "4408 Connection initialisation timeout": count. */
  closes: Record<string, number>;
}

type Request =
  | { type: "commit"; runId: string; seq: number; at: number }
  | { type: "timing"; on: boolean }
  | { type: "collect" }
  | { type: "stop" };

// Once the orchestrator is gone (it failed and is exiting) there is no one to tell.
const send = (message: unknown) => {
  if (process.connected) process.send?.(message);
};
const now = () => performance.timeOrigin + performance.now();

process.once("message", async (start: Start) => {
  const commits = new Map<string, number>(); // `${runId}:${seq}` → commit time
  const waiting = new Map<string, number[]>(); // receipts whose commit time has not arrived
  const histogram = new Map<number, number>();
  let deliveries = 0;
  let timing = false;
  let cpuAtTiming = process.cpuUsage();
  let cpuTimed = { user: 0, system: 0 };
  let errors = 0;
  let ready = 0;
  const record = (latency: number) => {
    const bucket = Math.round(latency * 10);
    histogram.set(bucket, (histogram.get(bucket) ?? 0) + 1);
    deliveries++;
  };

  const progress: ConnectProgress = {
    count: start.count,
    opened: 0,
    acked: 0,
    subscribed: 0,
    gaveUp: 0,
    reconnects: 0,
    closes: {},
  };
  const started = performance.now();
  const report = () => {
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    const closes = Object.entries(progress.closes)
      .map(([why, n]) => `${n}× ${why}`)
      .join(", ");
    process.stderr.write(
      `[bench clients ${process.pid}] ${seconds} s: ${progress.subscribed}/${progress.count} subscribed, ` +
        `${progress.acked} acked, ${progress.opened} sockets opened, ${progress.gaveUp} gave up, ` +
        `${progress.reconnects} reconnects${closes ? `; closes: ${closes}` : ""}\n`,
    );
    send({ type: "progress", progress });
  };
  const reporter = setInterval(report, PROGRESS_EVERY_MS);

  // A slot per subscriber between opening and its first event (or giving up).
  let connecting = 0;
  const slotFreed: (() => void)[] = [];
  const release = () => {
    connecting--;
    slotFreed.shift()?.();
  };

  const clients: Client[] = [];
  for (let i = 0; i < start.count; i++) {
    while (connecting >= MAX_CONNECTING) await new Promise<void>((r) => slotFreed.push(r));
    connecting++;
    const n = start.offset + i;
    const url = start.wsUrls[n % start.wsUrls.length]!;
    const runIndex = n % start.runIds.length;
    const runId = start.runIds[runIndex]!;
    // A viewer that loses its connection (a handshake timed out on a loaded machine) comes
    // back with its last seq, as a real client does; reconnects are counted and reported.
    const variables = { runId, afterSeq: start.afterSeqs[runIndex]! };
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
        opened: () => void progress.opened++,
        connected: () => {
          progress.acked++;
          if (++connections > 1) progress.reconnects++;
        },
        closed: (event) => {
          const { code, reason } = event as { code?: number; reason?: string };
          const why = `${code ?? "?"} ${reason || "(no reason)"}`;
          progress.closes[why] = (progress.closes[why] ?? 0) + 1;
        },
      },
    });
    clients.push(client);
    let first = true;
    const becameReady = (gaveUp: boolean) => {
      first = false;
      release();
      if (gaveUp) progress.gaveUp++;
      else progress.subscribed++;
      if (++ready === start.count) {
        report();
        send({ type: "ready", gaveUp: progress.gaveUp });
      }
    };
    client.subscribe<{ runEvents: { seq: number } }>(
      { query: start.query, variables },
      {
        next: ({ data }) => {
          const at = now();
          if (data) variables.afterSeq = data.runEvents.seq;
          if (first) becameReady(false);
          if (!timing || !data) return;
          const key = `${runId}:${data.runEvents.seq}`;
          const committed = commits.get(key);
          if (committed !== undefined) record(at - committed);
          else waiting.set(key, [...(waiting.get(key) ?? []), at]);
        },
        error: (error) => {
          errors++;
          // One that never got going (its retries spent on a loaded machine) is reported, not waited for.
          if (first) {
            process.stderr.write(
              `[bench clients ${process.pid}] subscriber ${n} gave up: ${describe(error)}\n`,
            );
            becameReady(true);
          }
        },
        complete: () => {},
      },
    );
  }

  process.on("message", async (request: Request) => {
    if (request.type === "commit") {
      const key = `${request.runId}:${request.seq}`;
      commits.set(key, request.at);
      for (const at of waiting.get(key) ?? []) record(at - request.at);
      waiting.delete(key);
    } else if (request.type === "timing") {
      timing = request.on;
      if (timing) cpuAtTiming = process.cpuUsage();
      else cpuTimed = process.cpuUsage(cpuAtTiming);
    } else if (request.type === "collect") {
      send({
        type: "collected",
        cpuMs: (cpuTimed.user + cpuTimed.system) / 1000,
        deliveries,
        errors,
        reconnects: progress.reconnects,
        histogram: [...histogram],
        unmatched: waiting.size,
      });
      histogram.clear();
      deliveries = 0;
    } else if (request.type === "stop") {
      clearInterval(reporter);
      await Promise.all(clients.map((c) => c.dispose()));
      send({ type: "stopped" });
      process.exit(0);
    }
  });
  send({ type: "started" });
});

/** An error as graphql-ws hands it: a CloseEvent, GraphQL errors, or an Error. */
function describe(error: unknown): string {
  if (Array.isArray(error)) return error.map((e: { message?: string }) => e.message).join("; ");
  if (error instanceof Error) return error.message;
  const close = error as { code?: number; reason?: string };
  if (typeof close?.code === "number") return `socket closed ${close.code} ${close.reason || ""}`.trim();
  return String(error);
}
