/**
 * `incubator bench events`: run-event latency from the writer's commit to the subscriber's
 * receipt, at several subscriber counts, over one or more API processes.
 *
 * Processes (all on this machine, loopback only): this one writes the events (as workers do,
 * `appendRunEvents`, one transaction each) and takes the commit time when the transaction
 * returns; `--api-processes` API servers (bench/events-api.ts) share one PostgreSQL; subscriber
 * processes (bench/events-clients.ts) hold one WebSocket connection per subscriber, spread
 * round-robin over the API processes and `--runs` runs written at once, and take receipt times.
 * Latency = receipt − commit, for every (event, subscriber) pair; p50/p90/p99/max per point,
 * repeated `--repeat` times with the spread. Also per point: what GC, the event loop, the
 * commit, NOTIFY handling, GraphQL execution and WebSocket writes cost (the breakdown), and
 * memory per idle subscription.
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { toGlobalId } from "../src/api/global-id.ts";
import { appendRunEvents } from "../src/platform/events/event-log.ts";
import { createArchitectureAndDataset } from "../test/helpers/rows.ts";
import type { ConnectProgress } from "./events-clients.ts";
import { openBenchDatabase } from "./scratch-database.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

export interface EventBenchOptions {
  subscribers: number[];
  /** Timed events per point, over all runs. */
  events: number;
  /** Runs written at once; subscribers are spread over them. */
  runs: number;
  /** Events per second written to each run. */
  ratePerRun: number;
  repeat: number;
  apiProcesses: number;
  /** Subscriber processes (0: one per 2,500 subscribers, at least one). */
  clientProcesses: number;
  /** The `src` folder whose API server is measured (default: this checkout's). */
  apiSrc: string;
  dataDir: string;
  log: (line: string) => void;
}

export interface Percentiles {
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
}

export interface PointResult extends Percentiles {
  subscribers: number;
  repeat: number;
  events: number;
  deliveries: number;
  expected: number;
  client_errors: number;
  /** Subscribers whose connection never succeeded (retries spent); `expected` leaves them out. */
  subscribers_connected: number;
  /** Subscribers that lost their connection and came back with afterSeq (e.g. a handshake timeout under load). */
  client_reconnects: number;
  /** What each cause cost during the timed window (null where the build does not report it). */
  breakdown: Breakdown;
  /** Bytes of API heap per idle subscription (its own WebSocket connection included), after a full GC. */
  heap_bytes_per_subscription: number | null;
  rss_bytes_per_subscription: number | null;
}

export interface Breakdown {
  write_commit_ms: Percentiles;
  gc: { count: number; total_ms: number; max_ms: number };
  event_loop_delay_p99_ms: number;
  event_loop_delay_max_ms: number;
  notify_to_rows_avg_ms: number | null;
  notify_to_rows_max_ms: number | null;
  executions_per_event: number | null;
  execution_ms_per_event: number | null;
  ws_flush_avg_ms: number | null;
  ws_flush_max_ms: number | null;
  ws_max_buffered_bytes: number | null;
  /** CPU time (user + system) of the API processes in the timed window, summed, and per delivery made. */
  api_cpu_ms: number;
  api_cpu_us_per_delivery: number | null;
  /** The same for the subscriber processes (they share the machine's cores with the API). */
  client_cpu_ms: number;
  client_cpu_us_per_delivery: number | null;
}

export interface EventBenchReport {
  machine: {
    cpu: string;
    cores: number;
    memory_gib: number;
    node: string;
    loadavg_start: number[];
    loadavg_end: number[];
  };
  date: string;
  commit: string;
  api_src: string;
  options: Omit<EventBenchOptions, "log" | "dataDir">;
  points: PointResult[];
  summary: {
    subscribers: number;
    p99_ms: number[];
    p99_median_ms: number;
    p99_min_ms: number;
    p99_max_ms: number;
  }[];
}

/** What a dashboard selects. */
const QUERY = `subscription ($runId: ID!, $afterSeq: Int) {
  runEvents(runId: $runId, afterSeq: $afterSeq) {
    seq type moduleIndex createdAt
    ... on TrainingProgress { stage step totalSteps loss lr imagesPerSecond etaSeconds }
    ... on LogMessage { level message }
  }
}`;

const WARM_UP = { type: "LOG", level: "INFO", message: "warm-up" } as const;

/**
 * How long all subscribers of a point may take to connect and get their first event: a minute,
 * plus 50 ms a subscriber (10,000: 9 min 20 s; on the 2-core machine at load ~20, 10,000 over two
 * API processes connected in 363 s — bench/RESULTS.md).
 */
export const connectDeadlineMs = (subscribers: number) => 60_000 + 50 * subscribers;

/** What the API processes say about the connect phase (bench/events-api.ts `progress`). */
export interface ApiProgress {
  openConnections: number;
  acceptedConnections: number;
  liveSubscriptions: number;
  replayReads: number;
}

/** The error of a connect phase past its deadline: who got how far, and how sockets closed. */
export function connectStallMessage(
  count: number,
  deadlineMs: number,
  clients: ConnectProgress[],
  apis: (ApiProgress | null)[],
): string {
  const sum = (pick: (p: ConnectProgress) => number) => clients.reduce((n, p) => n + pick(p), 0);
  const closes: Record<string, number> = {};
  for (const p of clients)
    for (const [why, n] of Object.entries(p.closes)) closes[why] = (closes[why] ?? 0) + n;
  const lines = [
    `connect phase stalled: ${sum((p) => p.subscribed)} of ${count} subscribers had their first event ` +
      `after ${Math.round(deadlineMs / 1000)} s (${sum((p) => p.gaveUp)} gave up; ` +
      `${sum((p) => p.acked)} connections acknowledged, ${sum((p) => p.opened)} sockets opened, ` +
      `${sum((p) => p.reconnects)} reconnects; ${count - sum((p) => p.count)} subscribers' process never reported)`,
    `  socket closes: ${Object.keys(closes).length ? JSON.stringify(closes) : "none"}`,
    ...apis.map((a, i) =>
      a
        ? `  API process ${i + 1}: ${a.openConnections} sockets open (${a.acceptedConnections} accepted), ` +
          `${a.liveSubscriptions} live subscriptions, ${a.replayReads} replay reads`
        : `  API process ${i + 1}: did not answer "progress" within 30 s (event loop blocked or process gone)`,
    ),
    "  Per-process progress is on stderr ([bench clients …], [bench api …]).",
  ];
  return lines.join("\n");
}

/**
 * The writer's append, tried again when its transaction could not start in time (Prisma P2028:
 * on a loaded machine the pool's wait ran out): one such write failed a whole point. The commit
 * time is taken after the attempt that committed, so latency is unaffected.
 */
async function appendRetrying(...args: Parameters<typeof appendRunEvents>): Promise<number[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await appendRunEvents(...args);
    } catch (error) {
      if ((error as { code?: string }).code !== "P2028" || attempt === 5) throw error;
      process.stderr.write(
        `[bench] writer: transaction did not start in time (attempt ${attempt}); trying again\n`,
      );
    }
  }
}

/** Children speak by IPC; each waits for one message type at a time. */
function ask<T>(child: ChildProcess, message: unknown, reply: string, timeoutMs = 600_000): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => reject(new Error(`bench child did not answer "${reply}"`)), timeoutMs)
      : undefined;
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      child.off("message", onMessage);
      reject(
        new Error(
          `bench child (pid ${child.pid}) exited (${signal ?? `code ${code}`}) before answering "${reply}"`,
        ),
      );
    };
    const onMessage = (m: { type: string }) => {
      if (m.type !== reply) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      resolvePromise(m as T);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
    if (message !== null) child.send(message as object);
  });
}

/**
 * `BENCH_EVENTS_CPU_PROF=<dir>`: every child (API and subscriber processes) writes a V8 CPU
 * profile there when it exits (`--cpu-prof`, which NODE_OPTIONS does not accept).
 */
const PROFILE_DIR = process.env.BENCH_EVENTS_CPU_PROF;

function forkTs(script: string): ChildProcess {
  const child = fork(join(HERE, script), [], {
    execArgv: [
      "--import",
      "tsx",
      "--expose-gc",
      ...(PROFILE_DIR ? ["--cpu-prof", `--cpu-prof-dir=${resolve(PROFILE_DIR)}`] : []),
    ],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  // A child gone mid-point (crashed, killed for memory) must be named, not crash this process with EPIPE.
  child.on("error", (error) =>
    process.stderr.write(`[bench] ${script} (pid ${child.pid}): ${error.message}\n`),
  );
  child.on("exit", (code, signal) => {
    if (code !== 0)
      process.stderr.write(`[bench] ${script} (pid ${child.pid}) exited: ${signal ?? `code ${code}`}\n`);
  });
  return child;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentilesOf(histogram: Map<number, number>): Percentiles {
  const buckets = [...histogram].sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((n, [, c]) => n + c, 0);
  const at = (p: number) => {
    const rank = Math.ceil((p / 100) * total);
    let seen = 0;
    for (const [bucket, count] of buckets) {
      seen += count;
      if (seen >= rank) return bucket / 10;
    }
    return Number.NaN;
  };
  return { p50_ms: at(50), p90_ms: at(90), p99_ms: at(99), max_ms: (buckets.at(-1)?.[0] ?? Number.NaN) / 10 };
}

const sortedPercentiles = (values: number[]): Percentiles => {
  const h = new Map<number, number>();
  for (const v of values) h.set(Math.round(v * 10), (h.get(Math.round(v * 10)) ?? 0) + 1);
  return percentilesOf(h);
};

function commitOf(apiSrc: string): string {
  try {
    const cwd = dirname(apiSrc);
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], {
      cwd,
      encoding: "utf8",
    });
    return dirty.trim() ? `${sha}+changes` : sha;
  } catch {
    return "unknown (not a git checkout)";
  }
}

export async function measureEventLatency(opts: EventBenchOptions): Promise<EventBenchReport> {
  const loadStart = loadavg();
  const date = new Date().toISOString();
  const scratch = await openBenchDatabase(opts.dataDir, "incubator_bench_events");
  const db = scratch.db;
  const apis: ChildProcess[] = [];
  /** Subscriber processes of the point in progress: killed if the point fails, not left behind. */
  const clients: ChildProcess[] = [];
  const points: PointResult[] = [];
  try {
    const apiSrc = resolve(opts.apiSrc);
    const wsUrls: string[] = [];
    for (let i = 0; i < opts.apiProcesses; i++) {
      const child = forkTs("events-api.ts");
      apis.push(child);
      const ready = await ask<{ wsUrl: string }>(child, { apiSrc, databaseUrl: scratch.url }, "ready");
      wsUrls.push(ready.wsUrl);
    }
    const { architecture, dataset } = await createArchitectureAndDataset(db, { name: "bench" });
    for (let repeat = 1; repeat <= opts.repeat; repeat++) {
      for (const count of opts.subscribers) {
        const point = await measurePoint(count, repeat);
        points.push(point);
        opts.log(
          `${String(count).padStart(6)} subscribers, repeat ${repeat}: p50 ${point.p50_ms} p90 ${point.p90_ms} ` +
            `p99 ${point.p99_ms} max ${point.max_ms} ms (${point.deliveries}/${point.expected} deliveries to ${point.subscribers_connected} connected, ${point.client_reconnects} reconnects)`,
        );
        opts.log(`        breakdown: ${JSON.stringify(point.breakdown)}`);
        if (point.heap_bytes_per_subscription !== null)
          opts.log(
            `        memory per idle subscription: heap ${point.heap_bytes_per_subscription} B, rss ${point.rss_bytes_per_subscription} B`,
          );
      }
    }

    async function measurePoint(count: number, repeat: number): Promise<PointResult> {
      const runs = [];
      for (let r = 0; r < opts.runs; r++) {
        runs.push(
          await db.run.create({
            data: { kind: "INCUBATION", architectureId: architecture.id, datasetId: dataset.id },
          }),
        );
      }
      const runIds = runs.map((run) => toGlobalId("Run", run.id));
      const memoryBefore = await Promise.all(
        apis.map((api) => ask<Memory>(api, { type: "memory" }, "memory")),
      );
      // One event per run before anyone subscribes: subscribers start after the one before it,
      // so each replays it (its first event: it is live) instead of the run's whole log.
      const firstSeqs = await Promise.all(
        runs.map(async (run) => (await appendRunEvents(db, run.id, [WARM_UP]))[0]!),
      );
      const processes = opts.clientProcesses || Math.max(1, Math.ceil(count / 2500));
      clients.length = 0;
      const readies: Promise<{ gaveUp: number }>[] = [];
      const progress = new Map<ChildProcess, ConnectProgress>();
      for (let p = 0; p < processes; p++) {
        const share = Math.floor(count / processes) + (p < count % processes ? 1 : 0);
        if (share === 0) continue;
        const child = forkTs("events-clients.ts");
        clients.push(child);
        child.on("message", (m: { type: string; progress?: ConnectProgress }) => {
          if (m.type === "progress" && m.progress) progress.set(child, m.progress);
        });
        // No timeout of its own: the connect deadline below applies, with what stalled.
        readies.push(ask<{ gaveUp: number }>(child, null, "ready", Number.POSITIVE_INFINITY));
        child.send({
          wsUrls,
          runIds,
          afterSeqs: firstSeqs.map((seq) => seq - 1),
          offset: p * Math.ceil(count / processes),
          count: share,
          query: QUERY,
        });
      }
      const deadlineMs = connectDeadlineMs(count);
      const connectStarted = performance.now();
      let gaveUp = 0;
      const allReady = Promise.all(readies).then((answers) => {
        gaveUp = answers.reduce((n, a) => n + a.gaveUp, 0);
        return true;
      });
      // The deadline's timer is cleared once everyone is in: left running, it kept the bench
      // alive for up to deadlineMs (9+ minutes at 10,000) after it had printed its results.
      let deadline: NodeJS.Timeout | undefined;
      const connected = await Promise.race([
        allReady,
        new Promise<false>((r) => {
          deadline = setTimeout(() => r(false), deadlineMs);
        }),
      ]).finally(() => clearTimeout(deadline));
      if (!connected) {
        const apiProgress = await Promise.all(
          apis.map((api) =>
            ask<ApiProgress>(api, { type: "progress" }, "progress", 30_000).catch(() => null),
          ),
        );
        throw new Error(connectStallMessage(count, deadlineMs, [...progress.values()], apiProgress));
      }
      opts.log(
        `${String(count).padStart(6)} subscribers connected in ${((performance.now() - connectStarted) / 1000).toFixed(1)} s` +
          (gaveUp ? ` (${gaveUp} gave up)` : ""),
      );
      // A few events to all of them before timing (code paths warm, queues drained).
      for (let round = 0; round < 3; round++) {
        await Promise.all(runs.map((run) => appendRunEvents(db, run.id, [WARM_UP])));
        await sleep(500);
      }
      await sleep(500); // let the last warm-ups drain
      const memoryIdle = await Promise.all(apis.map((api) => ask<Memory>(api, { type: "memory" }, "memory")));
      await Promise.all(apis.map((api) => ask(api, { type: "reset" }, "reset")));
      for (const child of clients) child.send({ type: "timing", on: true });

      // The writer: each run gets `ratePerRun` events a second, runs interleaved evenly.
      const writes: number[] = [];
      const period = 1000 / (opts.ratePerRun * opts.runs);
      const started = performance.now();
      const pending: Promise<void>[] = [];
      for (let i = 0; i < opts.events; i++) {
        const due = started + i * period;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const run = runs[i % runs.length]!;
        const runId = runIds[i % runs.length]!;
        const step = Math.floor(i / runs.length) + 1;
        pending.push(
          (async () => {
            const before = performance.now();
            const [seq] = await appendRetrying(db, run.id, [
              {
                type: "PROGRESS",
                moduleIndex: step % 4,
                stage: "MODULAR",
                step,
                totalSteps: opts.events,
                loss: 2.3 - step / opts.events,
                lr: 1e-3,
                imagesPerSecond: 1000,
                etaSeconds: 60,
              },
            ]);
            const at = performance.timeOrigin + performance.now();
            writes.push(performance.now() - before);
            for (const child of clients) child.send({ type: "commit", runId, seq, at });
          })(),
        );
      }
      await Promise.all(pending);
      await sleep(3_000); // stragglers
      for (const child of clients) child.send({ type: "timing", on: false });
      const stats = await Promise.all(apis.map((api) => ask<ApiStats>(api, { type: "stats" }, "stats")));
      const collected = await Promise.all(
        clients.map((child) => ask<Collected>(child, { type: "collect" }, "collected")),
      );
      await Promise.all(clients.map((child) => ask(child, { type: "stop" }, "stopped")));
      const histogram = new Map<number, number>();
      let deliveries = 0;
      let clientErrors = 0;
      let reconnects = 0;
      for (const c of collected) {
        reconnects += c.reconnects;
        deliveries += c.deliveries;
        clientErrors += c.errors;
        for (const [bucket, n] of c.histogram) histogram.set(bucket, (histogram.get(bucket) ?? 0) + n);
      }
      const perSubscription = (field: "heapUsed" | "rss") => {
        let grown = 0;
        let subscribers = 0;
        for (let i = 0; i < apis.length; i++) {
          const idle = memoryIdle[i]!;
          if (idle.subscribers === null) return null;
          grown += idle[field] - memoryBefore[i]![field];
          subscribers += idle.subscribers - (memoryBefore[i]!.subscribers ?? 0);
        }
        // Below 100 the first subscription's warm-up (code loaded, caches filled) dominates.
        return subscribers >= 100 ? Math.round(grown / subscribers) : null;
      };
      return {
        subscribers: count,
        repeat,
        events: opts.events,
        deliveries,
        expected: (count - gaveUp) * Math.round(opts.events / opts.runs),
        subscribers_connected: count - gaveUp,
        client_errors: clientErrors,
        client_reconnects: reconnects,
        ...percentilesOf(histogram),
        breakdown: breakdownOf(stats, writes, opts.events, collected, deliveries),
        heap_bytes_per_subscription: perSubscription("heapUsed"),
        rss_bytes_per_subscription: perSubscription("rss"),
      };
    }
  } finally {
    for (const child of clients) if (child.exitCode === null) child.kill();
    await Promise.all(
      apis.map((api) => ask(api, { type: "stop" }, "stopped", 30_000).catch(() => api.kill())),
    );
    await scratch.close();
  }
  const summary = opts.subscribers.map((subscribers) => {
    const p99 = points.filter((p) => p.subscribers === subscribers).map((p) => p.p99_ms);
    const sorted = [...p99].sort((a, b) => a - b);
    return {
      subscribers,
      p99_ms: p99,
      p99_median_ms: sorted[Math.floor((sorted.length - 1) / 2)]!,
      p99_min_ms: sorted[0]!,
      p99_max_ms: sorted.at(-1)!,
    };
  });
  const { log: _log, dataDir: _dataDir, ...options } = opts;
  return {
    machine: {
      cpu: cpus()[0]?.model ?? "?",
      cores: cpus().length,
      memory_gib: Math.round(totalmem() / 1024 ** 3),
      node: process.version,
      loadavg_start: loadStart.map((l) => Math.round(l * 100) / 100),
      loadavg_end: loadavg().map((l) => Math.round(l * 100) / 100),
    },
    date,
    commit: commitOf(resolve(opts.apiSrc)),
    api_src: resolve(opts.apiSrc),
    options,
    points,
    summary,
  };
}

interface Memory {
  heapUsed: number;
  rss: number;
  subscribers: number | null;
}

interface Collected {
  /** CPU time of the subscriber process while timing was on. */
  cpuMs?: number;
  deliveries: number;
  errors: number;
  reconnects: number;
  histogram: [number, number][];
}

type Counters = Record<string, Record<string, number>>;

interface ApiStats {
  /** CPU time of the API process since the reset (absent in older harness builds). */
  cpuMs?: number;
  gc: { count: number; totalMs: number; maxMs: number };
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  before: Counters | null;
  after: Counters | null;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

function breakdownOf(
  stats: ApiStats[],
  writes: number[],
  events: number,
  collected: Collected[],
  deliveries: number,
): Breakdown {
  const apiCpu = stats.reduce((n, s) => n + (s.cpuMs ?? 0), 0);
  const clientCpu = collected.reduce((n, c) => n + (c.cpuMs ?? 0), 0);
  const sum = (pick: (s: ApiStats) => number) => stats.reduce((n, s) => n + pick(s), 0);
  const max = (pick: (s: ApiStats) => number) => Math.max(...stats.map(pick));
  const reported = stats.every((s) => s.before && s.after);
  const delta = (s: ApiStats, area: string, field: string) =>
    s.after![area]![field]! - s.before![area]![field]!;
  const notices = reported ? sum((s) => delta(s, "hub", "reads")) : 0;
  const sends = reported ? sum((s) => delta(s, "transport", "sends")) : 0;
  return {
    write_commit_ms: sortedPercentiles(writes),
    gc: {
      count: sum((s) => s.gc.count),
      total_ms: round2(sum((s) => s.gc.totalMs)),
      max_ms: round2(max((s) => s.gc.maxMs)),
    },
    event_loop_delay_p99_ms: round2(max((s) => s.loopDelayP99Ms)),
    event_loop_delay_max_ms: round2(max((s) => s.loopDelayMaxMs)),
    notify_to_rows_avg_ms:
      reported && notices ? round2(sum((s) => delta(s, "hub", "noticeToRowsMs")) / notices) : null,
    notify_to_rows_max_ms: reported ? round2(max((s) => s.after!.hub!.maxNoticeToRowsMs!)) : null,
    executions_per_event: reported ? round2(sum((s) => delta(s, "fanout", "executions")) / events) : null,
    execution_ms_per_event: reported ? round2(sum((s) => delta(s, "fanout", "executionMs")) / events) : null,
    ws_flush_avg_ms: reported && sends ? round2(sum((s) => delta(s, "transport", "flushMs")) / sends) : null,
    ws_flush_max_ms: reported ? round2(max((s) => s.after!.transport!.maxFlushMs!)) : null,
    ws_max_buffered_bytes: reported ? max((s) => s.after!.transport!.maxBufferedBytes!) : null,
    api_cpu_ms: Math.round(apiCpu),
    api_cpu_us_per_delivery: deliveries ? round2((apiCpu * 1000) / deliveries) : null,
    client_cpu_ms: Math.round(clientCpu),
    client_cpu_us_per_delivery: deliveries ? round2((clientCpu * 1000) / deliveries) : null,
  };
}
