/**
 * What an API worker's calls do to the run's records, against the real platform (queue, API,
 * worker token):
 *  - a batch of events sent twice with the same `batchKey` (a retry after a lost answer) is
 *    recorded once: same seqs, no second copy of its events or its checkpoint's artifact row;
 *  - a project's artifact quota refuses a job's checkpoint (recordJobEvents) and outputs
 *    (completeJob) with QUOTA_EXCEEDED, and a real `incubator worker --api` fails such a job
 *    permanently with that reason.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { createWorkerToken } from "../../src/platform/auth/worker-tokens.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { TINY_DATA, TINY_VIT, tinyOverrides } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-batches-"));
let local: LocalPlatform & { token: string };
let workerSecret: string;
let admin: string;
const spawned: Spawned[] = [];

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 0, staleAfterMs: 60_000 });
  workerSecret = (await createWorkerToken(t.db, { name: "batch-site", labels: [] })).secret;
  admin = local.token;
});
afterAll(async () => {
  for (const w of spawned) w.child.kill("SIGKILL");
  await local?.close();
});

async function gql<T>(query: string, input: Record<string, unknown>, token: string): Promise<T> {
  const res = await postGraphQL<Record<string, T>>(local.api.url, query, { input }, { token });
  expect(res.errors).toBeUndefined();
  return Object.values(res.data!)[0]!;
}

/** An E2E run of the tiny ViT in project `projectName` (created here); its database id. */
async function startTinyRun(projectName: string): Promise<{ runId: string; projectId: string }> {
  const project = await t.db.project.create({ data: { name: projectName } });
  const projectId = toGlobalId("Project", project.id);
  const payloadOk = <T extends { userErrors: unknown[] }>(p: T) => {
    expect(p.userErrors).toEqual([]);
    return p;
  };
  const arch = payloadOk(
    await gql<{ architecture: { id: string }; userErrors: unknown[] }>(
      `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { message } } }`,
      { name: `${projectName}-vit`, ...TINY_VIT, modules: 4, projectId },
      admin,
    ),
  );
  const data = payloadOk(
    await gql<{ dataset: { id: string }; userErrors: unknown[] }>(
      `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { message } } }`,
      { name: `${projectName}-data`, spec: { ...TINY_DATA, length: 64 }, projectId },
      admin,
    ),
  );
  const run = payloadOk(
    await gql<{ run: { id: string }; userErrors: unknown[] }>(
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message } } }`,
      {
        kind: "E2E",
        projectId,
        architectureId: arch.architecture.id,
        datasetId: data.dataset.id,
        overrides: tinyOverrides({ e2e: 4 }),
      },
      admin,
    ),
  );
  return { runId: Buffer.from(run.run.id, "base64url").toString().split(":")[1]!, projectId: project.id };
}

async function claim(): Promise<string> {
  const payload = await gql<{ claimed: { lease: string } | null; userErrors: unknown[] }>(
    `mutation ($input: ClaimJobInput!) { claimJob(input: $input) { claimed { lease } userErrors { message } } }`,
    { workerId: "w1" },
    workerSecret,
  );
  expect(payload.userErrors).toEqual([]);
  expect(payload.claimed).not.toBeNull();
  return payload.claimed!.lease;
}

/** A file uploaded with the worker token, as a checkpoint event names it. */
async function uploadedCheckpoint(content: string, step: number) {
  const path = join(dataDir, `ckpt-${step}.bin`);
  writeFileSync(path, content);
  const sha256 = createHash("sha256").update(content).digest("hex");
  const put = await fetch(new URL(`/artifacts/${sha256}`, local.api.url), {
    method: "PUT",
    headers: { authorization: `Bearer ${workerSecret}` },
    body: content,
  });
  expect(put.status).toBeLessThan(300);
  return { type: "checkpoint", step, sha256, sizeBytes: Buffer.byteLength(content) };
}

const RECORD = `mutation ($input: RecordJobEventsInput!) {
  recordJobEvents(input: $input) { seqs userErrors { field message code } } }`;
type Recorded = { seqs: number[] | null; userErrors: { field: string[]; message: string; code: string }[] };
const progress = (step: number) => ({
  type: "progress",
  step,
  totalSteps: 4,
  loss: 1.5,
  lr: 0.01,
  imagesPerSecond: 10,
  etaSeconds: 1,
});

describe("recordJobEvents with a batch key", () => {
  it("records a batch sent twice once: the same seqs, one copy of its events and artifact", async () => {
    const { runId } = await startTinyRun("batches");
    const lease = await claim();
    const events = [progress(1), await uploadedCheckpoint("checkpoint at step 1", 1)];
    const count = async () => ({
      events: await t.db.runEvent.count({ where: { runId } }),
      checkpoints: await t.db.artifact.count({ where: { runId, kind: "CHECKPOINT" } }),
    });
    const before = await count();

    const first = await gql<Recorded>(RECORD, { lease, events, batchKey: "1:1" }, workerSecret);
    expect(first.userErrors).toEqual([]);
    expect(first.seqs).toHaveLength(2);
    const retried = await gql<Recorded>(RECORD, { lease, events, batchKey: "1:1" }, workerSecret);
    expect(retried).toEqual(first);
    expect(await count()).toEqual({ events: before.events + 2, checkpoints: before.checkpoints + 1 });

    // Another batch (another key) is recorded, after the first.
    const next = await gql<Recorded>(RECORD, { lease, events: [progress(2)], batchKey: "1:2" }, workerSecret);
    expect(next.seqs).toEqual([first.seqs![1]! + 1]);
    expect((await count()).events).toBe(before.events + 3);

    const bad = await gql<Recorded>(RECORD, { lease, events, batchKey: "no spaces" }, workerSecret);
    expect(bad.userErrors).toMatchObject([{ field: ["input", "batchKey"], code: "INVALID" }]);
    await gql(
      `mutation ($input: FailJobInput!) { failJob(input: $input) { willRetry userErrors { message } } }`,
      { lease, message: "done with this test", permanent: true },
      workerSecret,
    );
  });
});

describe("the artifact quota for a job's files", () => {
  it("refuses a checkpoint and the outputs of a job whose project is full (QUOTA_EXCEEDED), recording nothing", async () => {
    const { runId, projectId } = await startTinyRun("full");
    await t.db.project.update({ where: { id: projectId }, data: { artifactQuotaBytes: 10n } });
    const lease = await claim();
    const checkpoint = await uploadedCheckpoint("a checkpoint of more than ten bytes", 2);
    const before = await t.db.runEvent.count({ where: { runId } });
    const refused = await gql<Recorded>(
      RECORD,
      { lease, events: [progress(1), checkpoint], batchKey: "1:1" },
      workerSecret,
    );
    expect(refused.seqs).toBeNull();
    expect(refused.userErrors).toEqual([
      {
        field: ["input", "events"],
        code: "QUOTA_EXCEEDED",
        message: expect.stringMatching(
          /^project "full" would exceed its artifact quota: 0 bytes used \+ 35 new > 10 bytes/,
        ),
      },
    ]);
    expect(await t.db.runEvent.count({ where: { runId } })).toBe(before);
    expect(await t.db.artifact.count({ where: { runId } })).toBe(0);

    const completed = await gql<{ job: unknown; userErrors: { field: string[]; code: string }[] }>(
      `mutation ($input: CompleteJobInput!) { completeJob(input: $input) { job { id } userErrors { field message code } } }`,
      {
        lease,
        result: { phase: "e2e", steps: 4 },
        artifacts: [{ kind: "WEIGHTS", sha256: checkpoint.sha256, sizeBytes: checkpoint.sizeBytes }],
      },
      workerSecret,
    );
    expect(completed.job).toBeNull();
    expect(completed.userErrors).toMatchObject([{ field: ["input", "artifacts"], code: "QUOTA_EXCEEDED" }]);
    expect((await t.db.run.findUniqueOrThrow({ where: { id: runId } })).state).toBe("RUNNING");
    await gql(
      `mutation ($input: FailJobInput!) { failJob(input: $input) { willRetry userErrors { message } } }`,
      { lease, message: "done with this test", permanent: true },
      workerSecret,
    );
  });

  it("a real API worker fails the job permanently, saying why", async () => {
    const { runId, projectId } = await startTinyRun("tiny-quota");
    await t.db.project.update({ where: { id: projectId }, data: { artifactQuotaBytes: 1n } });
    const worker = spawnIncubator(
      ["worker", "--api", local.api.url, "--token", workerSecret, "--id", "q1", "--threads", "1"],
      { DATABASE_URL: undefined, DATA_DIR: mkdtempSync(join(tmpdir(), "incubator-quota-site-")) },
    );
    spawned.push(worker);
    const deadline = Date.now() + 120_000;
    let run = await t.db.run.findUniqueOrThrow({ where: { id: runId } });
    while (!["SUCCEEDED", "FAILED", "CANCELLED"].includes(run.state)) {
      if (Date.now() > deadline) throw new Error(`run still ${run.state}:\n${worker.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
      run = await t.db.run.findUniqueOrThrow({ where: { id: runId } });
    }
    expect(run.state).toBe("FAILED");
    const job = await t.db.job.findFirstOrThrow({ where: { runId } });
    expect(job.state).toBe("FAILED");
    expect(job.attempts).toBe(1); // permanent: no retry of a job that cannot fit
    expect(job.error).toMatch(
      /project "tiny-quota" would exceed its artifact quota: 0 bytes used \+ \d+ new > 1 bytes/,
    );
    expect(await t.db.artifact.count({ where: { runId } })).toBe(0);
  });
});
