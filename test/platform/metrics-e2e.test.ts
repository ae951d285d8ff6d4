/**
 * `/metrics` during a real run: the API, queue and dispatcher in this process, one database
 * worker as its own `incubator worker` process (each job in its own `incubator job` child), a
 * tiny incubation run started and watched over GraphQL, and Prometheus' view of it scraped
 * while it trains and after. The API, scraped with a real viewer token, shows the run's modules
 * by state, the worker's heartbeat and steps/s (database figures), the fan-out of the events it
 * streamed and the GraphQL operations this test sent, by name and outcome; the worker's own
 * `--metrics-port` shows the wait and run times of the jobs it claimed and finished.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { collectSubscription, postGraphQL, wsClient } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { parsePrometheusText, type Sample, sampleValue, scrape } from "../helpers/prometheus.ts";
import { createTinyArchitectureAndDataset, tinyOverrides } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-metrics-e2e-"));
const WORKER = "metrics-w1";
let local: LocalPlatform;
let worker: Spawned;
let workerMetricsUrl: string;
let viewer: string;

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 0 });
  viewer = await mintToken(t.db, "VIEWER", { name: "prometheus" });
  worker = spawnIncubator(
    ["worker", "--id", WORKER, "--threads", "1", "--heartbeat-ms", "1000", "--metrics-port", "0"],
    { DATABASE_URL: t.url, DATA_DIR: dataDir },
  );
  workerMetricsUrl = (await worker.waitFor(/(http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1]!;
  await worker.waitFor(/worker ready/);
}, 120_000);
afterAll(async () => {
  worker?.child.kill("SIGTERM");
  await worker?.exited;
  await local?.close();
});

/** The worker process's own metrics (no token: it listens on loopback). */
async function scrapeWorker(): Promise<Sample[]> {
  const response = await fetch(workerMetricsUrl);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

const graphqlCount = (samples: Sample[], operation: string, type: string, outcome: string) =>
  sampleValue(samples, "incubator_graphql_request_duration_seconds_count", { operation, type, outcome }) ?? 0;

describe("/metrics during a run", () => {
  it("shows the run's modules, the worker and the operations the test sent", {
    timeout: 600_000,
  }, async () => {
    const ids = await createTinyArchitectureAndDataset(local.api.url, "metrics-tiny", 512);
    const started = await postGraphQL<{ startRun: { run: { id: string }; userErrors: unknown[] } }>(
      local.api.url,
      `mutation StartMetricsRun($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { message } } }`,
      {
        input: {
          kind: "INCUBATION",
          ...ids,
          seed: 4,
          overrides: tinyOverrides({ pretrain: 20, modular: 400, finetune: 20 }),
        },
      },
    );
    expect(started.errors).toBeUndefined();
    expect(started.data!.startRun.userErrors).toEqual([]);
    const runId = started.data!.startRun.run.id;

    const client = wsClient(local.api.wsUrl);
    const watched = collectSubscription<{ runEvents: { seq: number } }>(
      client,
      `subscription WatchMetricsRun($runId: ID!) { runEvents(runId: $runId) { seq } }`,
      { runId },
    );
    let finished = false;
    void watched.finally(() => {
      finished = true;
    });

    // Scrape as Prometheus would (faster), and ask about the run, until a scrape shows a module
    // training on the worker with its speed and heartbeat.
    let training: Sample[] | undefined;
    let refusedSent = 0;
    while (!finished && !training) {
      const progress = await postGraphQL(
        local.api.url,
        `query MetricsRunProgress($id: ID!) { node(id: $id) { ... on Run { state modules { index state } } } }`,
        { id: runId },
      );
      expect(progress.errors).toBeUndefined();
      if (refusedSent === 0) {
        const refused = await postGraphQL(
          local.api.url,
          `query MetricsNoToken { runs { totalCount } }`,
          {},
          { token: null },
        );
        expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
        refusedSent++;
      }
      const { status, samples } = await scrape(local.api.url, viewer);
      expect(status).toBe(200);
      const speed = sampleValue(samples, "incubator_worker_steps_per_second", { worker: WORKER }) ?? 0;
      const running = sampleValue(samples, "incubator_modules", { state: "RUNNING" }) ?? 0;
      if (running >= 1 && speed > 0) training = samples;
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(training, "no scrape caught a module training with a speed").toBeDefined();
    // Tokens are required here: a scrape without one is refused.
    const anonymous = await scrape(local.api.url, null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.samples).toEqual([]);
    const mid = training!;
    // The run's four modules, one of them training, the rest waiting or done.
    const moduleStates = ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
    const modules = (state: string) => sampleValue(mid, "incubator_modules", { state }) ?? 0;
    expect(moduleStates.reduce((sum, state) => sum + modules(state), 0)).toBe(4);
    expect(modules("RUNNING")).toBe(1);
    expect(modules("FAILED") + modules("CANCELLED")).toBe(0);
    expect(sampleValue(mid, "incubator_runs", { state: "RUNNING", kind: "INCUBATION" })).toBe(1);
    // The worker: a heartbeat on the database's clock (within a minute of it), and its steps/s.
    const [{ now }] = await t.db.$queryRaw<[{ now: Date }]>`select now() as now`;
    const beat = sampleValue(mid, "incubator_worker_last_heartbeat_timestamp_seconds", { worker: WORKER })!;
    expect(Math.abs(now.getTime() / 1000 - beat)).toBeLessThan(60);
    expect(sampleValue(mid, "incubator_worker_steps_per_second", { worker: WORKER })).toBeGreaterThan(0);

    const { results, error } = await watched;
    await client.dispose();
    expect(error).toBeUndefined();
    expect(results.length).toBeGreaterThan(10);

    const end = (await scrape(local.api.url, viewer)).samples;
    expect(sampleValue(end, "incubator_runs", { state: "SUCCEEDED", kind: "INCUBATION" })).toBe(1);
    expect(sampleValue(end, "incubator_runs", { state: "RUNNING", kind: "INCUBATION" })).toBe(0);
    expect(sampleValue(end, "incubator_modules", { state: "SUCCEEDED" })).toBe(4);
    for (const stage of ["PRETRAIN", "MODULAR", "FINETUNE"])
      expect(sampleValue(end, "incubator_queue_depth", { stage })).toBe(0);
    // Job timings: the worker applied every claim and completion, so they are in its process
    // (each of the run's six jobs waited once and ran once, successfully), none in the API's.
    const own = await scrapeWorker();
    const jobs = { PRETRAIN: 1, MODULAR: 4, FINETUNE: 1 };
    for (const [stage, n] of Object.entries(jobs)) {
      const succeeded = { stage, outcome: "SUCCEEDED" };
      expect(sampleValue(own, "incubator_job_wait_seconds_count", { stage })).toBe(n);
      expect(sampleValue(own, "incubator_job_run_seconds_count", succeeded)).toBe(n);
      expect(sampleValue(own, "incubator_job_run_seconds_sum", succeeded)).toBeGreaterThan(0);
      expect(sampleValue(end, "incubator_job_wait_seconds_count", { stage })).toBe(undefined);
    }
    expect(sampleValue(own, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    // Every event the subscription received was handed over by this process's hub, most of them live.
    const live = sampleValue(end, "incubator_run_events_delivered_total", { mode: "LIVE" }) ?? 0;
    const replayed = sampleValue(end, "incubator_run_events_delivered_total", { mode: "REPLAY" }) ?? 0;
    expect(live + replayed).toBe(results.length);
    expect(sampleValue(end, "incubator_event_fanout_lag_seconds_count")).toBe(live);
    expect(live).toBeGreaterThan(0);
    expect(sampleValue(end, "incubator_subscriptions_open")).toBe(0);
    // The GraphQL operations this test sent over HTTP, by name and outcome.
    expect(graphqlCount(end, "StartMetricsRun", "mutation", "OK")).toBe(1);
    expect(graphqlCount(end, "MetricsRunProgress", "query", "OK")).toBeGreaterThanOrEqual(1);
    expect(graphqlCount(end, "MetricsNoToken", "query", "REFUSED")).toBe(1);
    // createArchitecture and registerDataset (tiny-run.ts sends them unnamed).
    expect(graphqlCount(end, "(anonymous)", "mutation", "OK")).toBe(2);
  });
});
