/**
 * Workers at another site: `incubator worker --api … --token …` processes with no DATABASE_URL
 * (and their own DATA_DIR) train a run started over GraphQL against the API in this process.
 * Their events land in the run's log with dense seq, their files in the platform's store.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { readRunEvents } from "../../src/platform/events/event-log.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { authHeaders, postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { createTinyArchitectureAndDataset } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-api-worker-"));
let local: LocalPlatform;
const workers: Spawned[] = [];
const secrets: Record<string, string> = {};

async function mutate<T>(query: string, input: Record<string, unknown>): Promise<T> {
  const res = await postGraphQL<Record<string, T>>(local.api.url, query, { input });
  expect(res.errors).toBeUndefined();
  return Object.values(res.data!)[0]!;
}

async function createToken(name: string, labels: string[]) {
  const created = await mutate<{ secret: string; workerToken: { id: string }; userErrors: unknown[] }>(
    `mutation ($input: CreateWorkerTokenInput!) { createWorkerToken(input: $input) {
      secret workerToken { id name labels } userErrors { field message code } } }`,
    { name, labels },
  );
  expect(created.userErrors).toEqual([]);
  expect(created.secret).toMatch(/^inc_wt_[A-Za-z0-9_-]{43}$/);
  secrets[name] = created.secret;
  return created.workerToken.id;
}

/** An API worker: no DATABASE_URL in its environment, its own data directory. */
function startApiWorker(id: string, token: string, extra: string[] = []): Spawned {
  const w = spawnIncubator(
    [
      "worker",
      "--api",
      local.api.url,
      "--token",
      token,
      "--id",
      id,
      "--threads",
      "1",
      "--heartbeat-ms",
      "500",
      ...extra,
    ],
    {
      DATABASE_URL: undefined,
      DATA_DIR: mkdtempSync(join(tmpdir(), `incubator-site-${id}-`)),
      LOG_LEVEL: "info",
    },
  );
  workers.push(w);
  return w;
}

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 0, staleAfterMs: 4000 });
  await createToken("site-a", ["site=a"]);
  await createToken("site-b", ["site=b"]);
});

afterAll(async () => {
  for (const w of workers) w.child.kill("SIGKILL");
  await local?.close();
});

async function startRun(name: string, steps: Record<string, number>, extra: Record<string, unknown> = {}) {
  const ids = await createTinyArchitectureAndDataset(local.api.url, name, 256);
  const started = await mutate<{ run: { id: string }; userErrors: unknown[] }>(
    `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message code } } }`,
    {
      kind: "INCUBATION",
      ...ids,
      seed: 2,
      overrides: { batchSize: 16, mixup: 0, cutmix: 0, baseLr: 0.01, augment: {}, steps },
      ...extra,
    },
  );
  expect(started.userErrors).toEqual([]);
  return Buffer.from(started.run.id, "base64url").toString().split(":")[1]!;
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: timed out\n${workers.map((w) => w.output().slice(-1500)).join("\n---\n")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const finished = (runId: string) => async () => {
  const run = await t.db.run.findUniqueOrThrow({ where: { id: runId } });
  return ["SUCCEEDED", "FAILED", "CANCELLED"].includes(run.state) ? run : null;
};

describe("worker tokens", () => {
  it("refuses worker calls without a token (UNAUTHENTICATED), with a revoked one (FORBIDDEN), over HTTP and WebSocket", async () => {
    const id = await createToken("short-lived", []);
    const claim = `mutation { claimJob(input: { workerId: "x" }) { claimed { lease } userErrors { message } } }`;
    const none = await postGraphQL(local.api.url, claim, undefined, { token: null });
    expect(none.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    expect(none.errors?.[0]?.message).toMatch(/Authorization: Bearer inc_wt_/);

    const revoked = await mutate<{ workerToken: { revokedAt: string | null } }>(
      `mutation ($input: RevokeWorkerTokenInput!) { revokeWorkerToken(input: $input) { workerToken { revokedAt } userErrors { message } } }`,
      { workerTokenId: id },
    );
    expect(revoked.workerToken.revokedAt).not.toBeNull();
    const http = await fetch(local.api.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secrets["short-lived"]}` },
      body: JSON.stringify({ query: claim }),
    });
    const body = (await http.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]!.extensions.code).toBe("FORBIDDEN");
    expect(body.errors[0]!.message).toMatch(/worker token "short-lived" was revoked/);

    const ws = createClient({
      url: local.api.wsUrl,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${secrets["short-lived"]}` },
    });
    // graphql-ws authenticates in connection_init: a revoked token's connection closes with 4403.
    const wsResult = await new Promise<{ code?: number; reason?: string }>((resolve) => {
      ws.subscribe(
        { query: claim },
        { next: () => resolve({}), error: (e) => resolve(e as never), complete: () => {} },
      );
    });
    await ws.dispose();
    expect(wsResult.code).toBe(4403);
    expect(wsResult.reason).toMatch(/^FORBIDDEN: worker token "short-lived" was revoked/);

    // Uploads need the token too, and only bytes that match their address are stored.
    const url = new URL(`/artifacts/${"0".repeat(64)}`, local.api.url);
    expect((await fetch(url, { method: "PUT", body: "x" })).status).toBe(401);
    // A viewer's API token does not upload; operators may (weights to register), workers do.
    const viewer = { authorization: `Bearer ${await mintToken(t.db, "VIEWER")}` };
    expect((await fetch(url, { method: "PUT", body: "x", headers: viewer })).status).toBe(403);
    expect((await fetch(url, { method: "PUT", body: "x", headers: authHeaders(url) })).status).toBe(422);
    const wrong = await fetch(url, {
      method: "PUT",
      body: "x",
      headers: { authorization: `Bearer ${secrets["site-a"]}` },
    });
    expect(wrong.status).toBe(422);

    // The list shows names, labels and last use; there is no field for the secret at all.
    const list = await postGraphQL<{
      workerTokens: { nodes: { name: string; labels: string[]; revokedAt: string | null }[] };
    }>(local.api.url, "{ workerTokens { nodes { name labels revokedAt lastSeenAt } } }");
    expect(list.data!.workerTokens.nodes.map((n) => n.name)).toEqual(["site-a", "site-b", "short-lived"]);
  });

  it("an API worker with a revoked token exits non-zero with one readable line", async () => {
    const w = startApiWorker("revoked-worker", secrets["short-lived"]!);
    expect(await w.exited).not.toBe(0);
    const lines = w.output().trim().split("\n");
    expect(lines).toEqual([
      expect.stringMatching(/^incubator: worker token "short-lived" was revoked at .*; create a new one$/),
    ]);
    const bogus = startApiWorker("bogus-worker", "inc_wt_not-a-real-token");
    expect(await bogus.exited).toBe(1);
    expect(bogus.output().trim()).toBe("incubator: the worker token is not valid");
  });
});

describe("API workers train a run", () => {
  it("site-a workers take everything but module 0 (site=b); a site-b worker takes it; events and artifacts arrive", async () => {
    const a = startApiWorker("a1", secrets["site-a"]!);
    await a.waitFor(/worker ready/);
    const runId = await startRun(
      "api-site",
      { pretrain: 10, modular: 20, finetune: 10 },
      {
        placement: [{ moduleIndex: 0, labels: ["site=b"] }],
      },
    );
    // Modules 1–3 finish on site a while module 0 waits for a site-b worker.
    await waitFor(
      "modules 1-3 done",
      async () =>
        (await t.db.module.count({ where: { runId, state: "SUCCEEDED", index: { in: [1, 2, 3] } } })) === 3,
      120_000,
    );
    const waiting = await t.db.job.findFirstOrThrow({ where: { runId, module: { index: 0 } } });
    expect(waiting).toMatchObject({ state: "QUEUED", attempts: 0, labels: ["site=b"] });

    const b = startApiWorker("b1", secrets["site-b"]!);
    await b.waitFor(/worker ready/);
    const run = await waitFor("run finished", finished(runId), 120_000);
    expect(run.state).toBe("SUCCEEDED");

    const jobs = await t.db.job.findMany({ where: { runId }, include: { module: true } });
    expect(jobs.every((j) => j.state === "SUCCEEDED")).toBe(true);
    // Module jobs and PT by placement; FT requires no label, so either site may take it.
    for (const job of jobs.filter((j) => j.stage !== "FINETUNE"))
      expect(job.workerId).toBe(job.module?.index === 0 ? "site-b/b1" : "site-a/a1");
    const events = await readRunEvents(t.db, runId, 0, { limit: 10_000 });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    for (const m of [0, 1, 2, 3]) {
      expect(events.some((e) => e.type === "PROGRESS" && e.moduleIndex === m && e.step === 20)).toBe(true);
    }
    expect(events.at(-1)).toMatchObject({ type: "RUN_STATE", state: "SUCCEEDED" });

    // Every file the API workers produced was uploaded into the platform's store.
    const artifacts = await t.db.artifact.findMany({ where: { runId } });
    const kinds = new Set(artifacts.map((x) => x.kind));
    for (const kind of ["CHECKPOINT", "WEIGHTS", "ASSEMBLED_MODEL", "FINAL_WEIGHTS", "FINAL_MODEL_ONNX"])
      expect(kinds).toContain(kind);
    for (const artifact of artifacts) expect(await local.artifacts.has(artifact.sha256)).toBe(true);
    const tokens = await t.db.workerToken.findMany({ where: { name: { in: ["site-a", "site-b"] } } });
    expect(tokens.every((x) => x.lastSeenAt !== null)).toBe(true);
  }, 300_000);

  it("an API worker killed mid-module: the API server's sweep hands the job on and another API worker resumes from its checkpoint", async () => {
    for (const w of workers) w.child.kill("SIGKILL");
    const victim = startApiWorker("victim", secrets["site-a"]!);
    await victim.waitFor(/worker ready/);
    const runId = await startRun("api-fault", { pretrain: 10, modular: 100, finetune: 10 });
    await waitFor(
      "a module checkpoint",
      () => t.db.artifact.findFirst({ where: { runId, kind: "CHECKPOINT", job: { stage: "MODULAR" } } }),
      120_000,
    );
    victim.child.kill("SIGKILL");
    const rescuer = startApiWorker("rescuer", secrets["site-a"]!);
    await rescuer.waitFor(/worker ready/);
    const run = await waitFor("run finished", finished(runId), 200_000);
    expect(run.state).toBe("SUCCEEDED");

    const retried = await t.db.job.findFirstOrThrow({
      where: { runId, stage: "MODULAR", attempts: { gte: 2 } },
      include: { module: true },
    });
    expect(retried.workerId).toBe("site-a/rescuer");
    const events = await readRunEvents(t.db, runId, 0, { limit: 10_000 });
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const starts = events.filter((e) => e.type === "JOB_STARTED" && e.moduleIndex === retried.module!.index);
    expect(starts.map((e) => e.type === "JOB_STARTED" && e.startStep > 0)).toEqual([false, true]);
    // The sweep put the job back in the queue, saying why.
    expect(
      events.some(
        (e) => e.type === "JOB_STATE" && e.state === "QUEUED" && /stopped heartbeating/.test(e.reason ?? ""),
      ),
    ).toBe(true);
  }, 360_000);
});
