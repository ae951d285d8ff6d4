/**
 * A worker on another host, tested as such. The test makes a network namespace of its own (a
 * second host, joined to this machine by a veth pair on a private /30) and runs an API worker
 * in it with `ip netns exec`: its own DATA_DIR, no DATABASE_URL, and neither the API's data
 * folder, PostgreSQL's socket folder nor the S3 server's folder visible (tmpfs laid over them in
 * its mount namespace). Its network reaches only the API, which listens on this machine's veth
 * address with tokens; PostgreSQL and the S3 server listen on 127.0.0.1, which in the namespace is
 * its own loopback. It holds a worker token for `site=far` and completes the decentralised
 * modules of a run through the API: meta weights and its data shards downloaded from the API,
 * module weights uploaded to it, and the API keeps them in the object store (ARTIFACT_STORE=s3).
 *
 * Skipped, saying why, only where namespaces cannot be made (not root, no iproute2).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { openArtifactStore } from "../../src/platform/artifacts/open.ts";
import { writeIdxSplit } from "../data/helpers.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createTestHost, netnsUnavailable, type TestHost } from "../helpers/netns.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { type Spawned, spawnIncubator } from "../helpers/process.ts";
import { startTestS3, type TestS3 } from "../helpers/s3.ts";
import { mutate, runTinyToEnd, tinyOverrides } from "../helpers/tiny-run.ts";

const why = netnsUnavailable();
if (why)
  console.warn(`SKIPPED netns-worker.test.ts: a worker on another host needs network namespaces: ${why}`);

const K = 2;
const N = 200;
const t = useTestDatabase();
/** The API's machine: its data folder (dataset, shard cache, artifact cache). */
const apiDir = mkdtempSync(join(tmpdir(), "incubator-netns-api-"));
/** The far host's own folder. */
const farDir = mkdtempSync(join(tmpdir(), "incubator-netns-far-"));
const POSTGRES_SOCKETS = "/var/run/postgresql";
let host: TestHost | undefined;
let s3: TestS3;
let local: LocalPlatform & { token: string };
let worker: Spawned | undefined;

/** What the far host can see: the folders hidden from it. */
const hidden = () => [apiDir, s3.directory, POSTGRES_SOCKETS].filter((d) => existsSync(d));

/** TCP connects from inside the namespace: "open" or the error code, per target. */
function probeFromFarHost(targets: [string, number][]): Record<string, string> {
  const script = `const net = require("node:net");
const targets = ${JSON.stringify(targets)};
Promise.all(targets.map(([h, p]) => new Promise((done) => {
  const s = net.connect({ host: h, port: p, timeout: 3000 });
  s.on("connect", () => { s.destroy(); done([h + ":" + p, "open"]); });
  s.on("timeout", () => { s.destroy(); done([h + ":" + p, "timeout"]); });
  s.on("error", (e) => done([h + ":" + p, e.code]));
}))).then((r) => console.log(JSON.stringify(Object.fromEntries(r))));`;
  const [command, ...args] = host!.wrap(hidden());
  const out = spawnSync(command as string, [...args, process.execPath, "-e", script], { encoding: "utf8" });
  expect(out.status, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as Record<string, string>;
}

beforeAll(async () => {
  if (why) return;
  host = createTestHost();
  s3 = await startTestS3();
  writeIdxSplit(join(apiDir, "fm"), { n: N, h: 16, w: 16 });
  writeIdxSplit(join(apiDir, "fm"), { n: 50, h: 16, w: 16, split: "t10k", seed: 9 });
  // Tokens on the veth address, as a deployment's API; its own worker does PT and FT.
  local = await startTestPlatform(t, apiDir, {
    workers: 1,
    threads: 1,
    host: host.hostAddress,
    artifactStore: s3.settings(apiDir),
  });
}, 120_000);

afterAll(async () => {
  worker?.child.kill("SIGKILL");
  await worker?.exited;
  host?.remove();
  await local?.close();
  await s3?.close();
  rmSync(apiDir, { recursive: true, force: true });
  rmSync(farDir, { recursive: true, force: true });
});

describe.skipIf(why !== null)("a worker on another host (its own network namespace)", () => {
  it("reaches only the API: not PostgreSQL, not the S3 server, not the API's files", () => {
    const port = Number(new URL(local.api.url).port);
    const s3Port = Number(new URL(s3.endpoint).port);
    const dbPort = Number(new URL(t.url).port || 5432);
    expect(
      probeFromFarHost([
        [host!.hostAddress, port],
        ["127.0.0.1", dbPort],
        [host!.hostAddress, dbPort],
        ["127.0.0.1", s3Port],
        [host!.hostAddress, s3Port],
      ]),
    ).toEqual({
      [`${host!.hostAddress}:${port}`]: "open",
      [`127.0.0.1:${dbPort}`]: "ECONNREFUSED",
      [`${host!.hostAddress}:${dbPort}`]: "ECONNREFUSED",
      [`127.0.0.1:${s3Port}`]: "ECONNREFUSED",
      [`${host!.hostAddress}:${s3Port}`]: "ECONNREFUSED",
    });
    const [command, ...args] = host!.wrap(hidden());
    const listing = spawnSync(command as string, [...args, "ls", "-A", ...hidden()], {
      encoding: "utf8",
    });
    expect(listing.status, listing.stderr).toBe(0);
    expect(listing.stdout.split("\n").filter((l) => l && !l.endsWith(":"))).toEqual([]);
    expect(readdirSync(apiDir)).toContain("fm"); // while this machine still sees them
  });

  it("completes the decentralised modules through the API and the object store", async () => {
    const arch = await mutate<{ architecture: { id: string } }>(
      local.api.url,
      `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { message } } }`,
      {
        name: "far",
        imageSize: 16,
        channels: 1,
        patchSize: 4,
        width: 32,
        depth: 2,
        heads: 2,
        numClasses: 10,
        modules: K,
      },
    );
    const dataset = await mutate<{ dataset: { id: string } }>(
      local.api.url,
      `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { message } } }`,
      { name: "far-fm", spec: { format: "idx", path: join(apiDir, "fm") } },
    );
    const { secret } = await mutate<{ secret: string }>(
      local.api.url,
      `mutation ($input: CreateWorkerTokenInput!) { createWorkerToken(input: $input) { secret userErrors { message } } }`,
      { name: "far", labels: ["site=far"] },
    );
    worker = spawnIncubator(
      [
        "worker",
        "--api",
        local.api.url,
        "--token",
        secret,
        "--id",
        "far1",
        "--threads",
        "1",
        "--shards",
        "0,1",
      ],
      {
        DATABASE_URL: undefined,
        DATA_DIR: join(farDir, "data"),
        LOG_LEVEL: "info",
        // It has no S3 settings or credentials: artifacts go through the API.
        ARTIFACT_STORE: undefined,
        AWS_ACCESS_KEY_ID: undefined,
        AWS_SECRET_ACCESS_KEY: undefined,
      },
      farDir,
      host!.wrap(hidden()),
    );
    await worker.waitFor(/worker token accepted/, 120_000);

    const run = await runTinyToEnd(
      local.api.url,
      {
        kind: "INCUBATION",
        architectureId: arch.architecture.id,
        datasetId: dataset.dataset.id,
        seed: 5,
        decentralized: true,
        placement: [0, 1].map((moduleIndex) => ({ moduleIndex, labels: ["site=far"] })),
        overrides: tinyOverrides({ pretrain: 4, modular: 4, finetune: 4 }),
      },
      { timeoutMs: 400_000, diagnostics: () => worker!.output().slice(-3000) },
    );
    expect(run.modules.map((m) => m.jobs.map((j) => j.workerId))).toEqual([["far/far1"], ["far/far1"]]);
    // The module weights it uploaded through the API are whole, verified objects in the bucket.
    const moduleWeights = run.modules
      .flatMap((m) => m.jobs.flatMap((j) => j.artifacts))
      .filter((a) => a.kind === "WEIGHTS");
    expect(moduleWeights).toHaveLength(K);
    const bucket = openArtifactStore(s3.settings(mkdtempSync(join(tmpdir(), "incubator-netns-check-"))));
    for (const a of moduleWeights)
      expect(await bucket.has(a.sha256, { sizeBytes: a.sizeBytes, verify: true })).toBe(true);
    // It read its shards over the API (it cannot see the files) and cached the meta weights it downloaded.
    const jobs = await t.db.job.findMany({ where: { runId: run.id, stage: "MODULAR" } });
    for (const job of jobs) expect((job.result as { data: { cache: string } }).data.cache).toBe("fetched");
    expect(
      readdirSync(join(farDir, "data", "artifact-cache")).filter((d) => d !== ".tmp").length,
    ).toBeGreaterThan(0);
    expect(worker.output()).not.toMatch(/ENOENT|ECONNREFUSED/);
  }, 450_000);
});
