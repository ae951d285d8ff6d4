/**
 * `/metrics` during a real run: the whole platform in this process with one local worker (each
 * job in its own `incubator job` child), a tiny incubation run started and watched over GraphQL,
 * and Prometheus' view of it scraped with a real viewer token while it trains and after: the
 * run's modules by state, the worker's heartbeat and steps/s, job wait and run times, the
 * fan-out of its events, and the GraphQL operations this test sent, by name and outcome.
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
import { type Sample, sampleValue, scrape } from "../helpers/prometheus.ts";
import { createTinyArchitectureAndDataset, tinyOverrides } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-metrics-e2e-"));
let local: LocalPlatform;
let viewer: string;

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 1, threads: 1 });
  viewer = await mintToken(t.db, "VIEWER", { name: "prometheus" });
});
afterAll(async () => {
  await local?.close();
});

const WORKER = "local-1";
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
    const mid = training!;
    // The run's four modules, one of them training, the rest waiting or done.
    const moduleStates = ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
    const byState = Object.fromEntries(
      moduleStates.map((state) => [state, sampleValue(mid, "incubator_modules", { state }) ?? 0]),
    );
    expect(Object.values(byState).reduce((a, b) => a + b, 0)).toBe(4);
    expect(byState.RUNNING).toBe(1);
    expect(byState.FAILED + byState.CANCELLED).toBe(0);
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
    // Job timings: each of the run's six jobs waited once and ran once, successfully.
    const jobs = { PRETRAIN: 1, MODULAR: 4, FINETUNE: 1 };
    for (const [stage, n] of Object.entries(jobs)) {
      expect(sampleValue(end, "incubator_job_wait_seconds_count", { stage })).toBe(n);
      expect(sampleValue(end, "incubator_job_run_seconds_count", { stage, outcome: "SUCCEEDED" })).toBe(n);
      expect(
        sampleValue(end, "incubator_job_run_seconds_sum", { stage, outcome: "SUCCEEDED" }),
      ).toBeGreaterThan(0);
    }
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
