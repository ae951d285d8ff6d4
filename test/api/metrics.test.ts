/**
 * `GET /metrics` on a real API server with real tokens: who may scrape, the database figures
 * against rows this test wrote (runs, modules, queue depth, a worker's heartbeat and steps/s),
 * GraphQL requests by operation name and outcome, and a live subscription's fan-out.
 */
import { describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import { useViewerApiServer } from "../helpers/api-server.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent, runFinished } from "../helpers/events.ts";
import { postGraphQL, wsClient } from "../helpers/graphql.ts";
import { sampleValue, scrape } from "../helpers/prometheus.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
const server = useViewerApiServer(t);

describe("who may scrape /metrics", () => {
  it("refuses no token, an unknown token and a project-limited viewer; a viewer of every project scrapes", async () => {
    const none = await scrape(server.url, null);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.text)).toMatchObject({ code: "UNAUTHENTICATED" });
    const bogus = await scrape(server.url, "inc_at_not-a-real-token");
    expect(bogus.status).toBe(401);
    const project = await t.db.project.create({ data: { name: "metrics-limited" } });
    const limited = await scrape(server.url, await mintToken(t.db, "VIEWER", { projects: [project.id] }));
    expect(limited.status).toBe(403);
    expect(JSON.parse(limited.text)).toMatchObject({ code: "FORBIDDEN" });
    expect(limited.text).toMatch(/not limited to projects/);

    const ok = await scrape(server.url);
    expect(ok.status).toBe(200);
    expect(ok.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    // prom-client's default process metrics are there too.
    expect(sampleValue(ok.samples, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    const post = await fetch(new URL("/metrics", server.url), { method: "POST" });
    expect(post.status).toBe(405);
  });
});

describe("database figures", () => {
  it("counts runs and modules by state, queued jobs by stage, and each worker's heartbeat and steps/s", async () => {
    const queued = await createRunRows(t.db, { modules: true });
    const running = await createRunRows(t.db, { modules: true, run: { state: "RUNNING" } });
    const modules = await t.db.module.findMany({
      where: { runId: running.run.id },
      orderBy: { index: "asc" },
    });
    await t.db.module.update({ where: { id: modules[1]!.id }, data: { state: "RUNNING" } });
    await t.db.module.update({ where: { id: modules[0]!.id }, data: { state: "SUCCEEDED" } });
    const [{ now }] = await t.db.$queryRaw<[{ now: Date }]>`select now() as now`;
    const ago = (s: number) => new Date(now.getTime() - s * 1000);
    await t.db.job.createMany({
      data: [
        { runId: queued.run.id, stage: "PRETRAIN", state: "QUEUED" },
        { runId: running.run.id, moduleId: modules[2]!.id, stage: "MODULAR", state: "QUEUED" },
        { runId: running.run.id, moduleId: modules[3]!.id, stage: "MODULAR", state: "QUEUED" },
        {
          runId: running.run.id,
          moduleId: modules[1]!.id,
          stage: "MODULAR",
          state: "RUNNING",
          attempts: 1,
          workerId: "site-a/w1",
          spec: { recipe: { batchSize: 16 } },
          startedAt: ago(20),
          heartbeatAt: ago(2),
        },
        // Silent for two hours: out of the window, no series.
        {
          runId: running.run.id,
          moduleId: modules[0]!.id,
          stage: "MODULAR",
          state: "SUCCEEDED",
          attempts: 1,
          workerId: "site-b/gone",
          startedAt: ago(7300),
          heartbeatAt: ago(7200),
        },
      ],
    });
    // Module 1's progress: an older event of module 1, then the newest (64 images/s at batch 16 = 4 steps/s).
    await appendRunEvents(t.db, running.run.id, [
      progressEvent(1, 10, { imagesPerSecond: 32 }),
      progressEvent(2, 5, { imagesPerSecond: 999 }),
      progressEvent(1, 20, { imagesPerSecond: 64 }),
      progressEvent(0, 30, { imagesPerSecond: 999 }),
    ]);

    const { samples } = await scrape(server.url);
    expect(sampleValue(samples, "incubator_runs", { state: "QUEUED", kind: "INCUBATION" })).toBe(1);
    expect(sampleValue(samples, "incubator_runs", { state: "RUNNING", kind: "INCUBATION" })).toBe(1);
    expect(sampleValue(samples, "incubator_runs", { state: "SUCCEEDED", kind: "E2E" })).toBe(0);
    expect(sampleValue(samples, "incubator_modules", { state: "PENDING" })).toBe(6);
    expect(sampleValue(samples, "incubator_modules", { state: "RUNNING" })).toBe(1);
    expect(sampleValue(samples, "incubator_modules", { state: "SUCCEEDED" })).toBe(1);
    expect(sampleValue(samples, "incubator_queue_depth", { stage: "MODULAR" })).toBe(2);
    expect(sampleValue(samples, "incubator_queue_depth", { stage: "PRETRAIN" })).toBe(1);
    expect(sampleValue(samples, "incubator_queue_depth", { stage: "FINETUNE" })).toBe(0);
    expect(
      sampleValue(samples, "incubator_worker_last_heartbeat_timestamp_seconds", { worker: "site-a/w1" }),
    ).toBe(ago(2).getTime() / 1000);
    expect(
      sampleValue(samples, "incubator_worker_last_heartbeat_timestamp_seconds", { worker: "site-b/gone" }),
    ).toBe(undefined);
    expect(sampleValue(samples, "incubator_worker_steps_per_second", { worker: "site-a/w1" })).toBe(4);
    expect(sampleValue(samples, "incubator_worker_steps_per_second", { worker: "site-b/gone" })).toBe(
      undefined,
    );
  });
});

describe("GraphQL requests", () => {
  const count = (samples: Awaited<ReturnType<typeof scrape>>["samples"], labels: Record<string, string>) =>
    sampleValue(samples, "incubator_graphql_request_duration_seconds_count", labels) ?? 0;

  it("are counted by operation name, type and outcome, with bounded names", async () => {
    const before = (await scrape(server.url)).samples;
    const run = await createRunRows(t.db);
    const runId = toGlobalId("Run", run.run.id);
    expect((await postGraphQL(server.url, "query MetricsProbe { health { ok } }")).errors).toBeUndefined();
    expect((await postGraphQL(server.url, "query MetricsProbe { health { ok } }")).errors).toBeUndefined();
    expect((await postGraphQL(server.url, "{ health { ok } }")).errors).toBeUndefined();
    const refused = await postGraphQL(
      server.url,
      "query MetricsRuns { runs { totalCount } }",
      {},
      { token: null },
    );
    expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    const invalid = await postGraphQL(server.url, "query Broken { health { ok ");
    expect(invalid.errors?.[0]?.extensions?.code).toBe("GRAPHQL_PARSE_FAILED");
    const failed = await postGraphQL(server.url, "query MetricsMissing($id: ID!) { run(id: $id) { id } }", {
      id: "not-a-global-id",
    });
    expect(failed.errors?.length).toBeGreaterThan(0);
    const named = await postGraphQL(server.url, "query MetricsRun($id: ID!) { run(id: $id) { id } }", {
      id: runId,
    });
    expect(named.errors).toBeUndefined();

    const after = (await scrape(server.url)).samples;
    const delta = (labels: Record<string, string>) => count(after, labels) - count(before, labels);
    expect(delta({ operation: "MetricsProbe", type: "query", outcome: "OK" })).toBe(2);
    expect(delta({ operation: "(anonymous)", type: "query", outcome: "OK" })).toBe(1);
    expect(delta({ operation: "MetricsRuns", type: "query", outcome: "REFUSED" })).toBe(1);
    expect(delta({ operation: "(other)", type: "unknown", outcome: "INVALID" })).toBe(1);
    expect(delta({ operation: "MetricsMissing", type: "query", outcome: "ERROR" })).toBe(1);
    expect(delta({ operation: "MetricsRun", type: "query", outcome: "OK" })).toBe(1);
    // A client-chosen name that never resolved is not a label value.
    expect(after.some((s) => s.labels.operation === "Broken")).toBe(false);
    const sum = sampleValue(after, "incubator_graphql_request_duration_seconds_sum", {
      operation: "MetricsProbe",
      type: "query",
      outcome: "OK",
    });
    expect(sum).toBeGreaterThan(0);
  });
});

describe("run-event fan-out", () => {
  it("times live events to a subscriber and counts replayed ones apart", async () => {
    const { run } = await createRunRows(t.db);
    await appendRunEvents(t.db, run.id, [progressEvent(0, 1), progressEvent(0, 2)]);
    const before = (await scrape(server.url)).samples;
    const client = wsClient(server.wsUrl);
    const seen: unknown[] = [];
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe(
        {
          query: "subscription ($runId: ID!) { runEvents(runId: $runId) { seq } }",
          variables: { runId: toGlobalId("Run", run.id) },
        },
        { next: (v) => seen.push(v), error: reject, complete: resolve },
      );
    });
    await expect.poll(() => seen.length).toBe(2); // the replay
    const open = (await scrape(server.url)).samples;
    expect(sampleValue(open, "incubator_subscriptions_open")).toBe(1);
    expect(sampleValue(open, "incubator_websocket_connections_open")).toBe(1);
    await appendRunEvents(t.db, run.id, [progressEvent(0, 3), progressEvent(0, 4), runFinished]);
    await done;
    await client.dispose();
    expect(seen).toHaveLength(5);

    const after = (await scrape(server.url)).samples;
    const delta = (name: string, labels: Record<string, string> = {}) =>
      (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    expect(delta("incubator_run_events_delivered_total", { mode: "REPLAY" })).toBe(2);
    expect(delta("incubator_run_events_delivered_total", { mode: "LIVE" })).toBe(3);
    expect(delta("incubator_event_fanout_lag_seconds_count")).toBe(3);
    expect(delta("incubator_event_fanout_lag_seconds_bucket", { le: "+Inf" })).toBe(3);
    await expect
      .poll(async () => sampleValue((await scrape(server.url)).samples, "incubator_subscriptions_open"))
      .toBe(0);
  });
});
