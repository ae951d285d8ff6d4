/**
 * Time to accuracy on the platform (issue 15, "really parallel"): the same target as
 * time-to-accuracy.sh, but each run goes through `startRun` on a local platform (API, queue,
 * dispatcher, local workers in child processes) and is timed from the mutation to the run's
 * SUCCEEDED, next to the critical path computed from its jobs' own start and end times.
 *
 * Same cores for both arms: E2E on a platform with one worker of THREADS threads; incubation on
 * a platform with WORKERS workers of THREADS / WORKERS threads each, so the K MT jobs run
 * WORKERS at a time — and so do PT and FT, which then use only their worker's share of the
 * threads (a platform worker's thread count is fixed; the CLI's `incubate -w` gives PT and FT
 * every core instead). Both runs share one scratch database; the speed-up at equal accuracy
 * comes from their `Run.accuracyCurve`s, as `incubator compare` computes it.
 *
 *   npx tsx bench/experiments/platform-time-to-accuracy.ts [--seed 2] [--tiny] [--out file.json]
 *
 * DATABASE_URL's server (else an embedded PostgreSQL) holds a scratch database dropped at the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { queryApi } from "../../src/cli/api-client.ts";
import { type LocalPlatform, startLocalPlatform } from "../../src/cli/local-platform.ts";
import { fetchComparedRun } from "../../src/cli/platform-run.ts";
import { RUN_PRESETS } from "../../src/incubation/config.ts";
import { type ComparedRun, compareRuns } from "../../src/incubation/time-to-accuracy.ts";
import { openBenchDatabase } from "../scratch-database.ts";

const { values: args } = parseArgs({
  options: {
    seed: { type: "string", default: "0" },
    tiny: { type: "boolean", default: false },
    out: { type: "string" },
    workers: { type: "string", default: "2" },
    threads: { type: "string", default: String(Math.min(cpus().length, 2)) },
    data: { type: "string", default: "/usr/share/datasets/fashion-mnist" },
  },
});
const seed = Number(args.seed);
const workers = Number(args.workers);
const threads = Number(args.threads);
// The time-to-accuracy.sh target and budgets (its --tiny twin proves the script in seconds).
const size = args.tiny
  ? { depth: 8, e2e: 12, pretrain: 6, modular: 4, finetune: 6, evalEvery: 3, evalSubset: 64 }
  : { depth: 24, e2e: 900, pretrain: 600, modular: 450, finetune: 450, evalEvery: 50, evalSubset: 500 };
const ARCH = {
  imageSize: 28,
  channels: 1,
  patchSize: 4,
  width: 32,
  depth: size.depth,
  heads: 4,
  numClasses: 10,
  modules: 4,
};
const BIN = resolve(import.meta.dirname, "../../bin/incubator.js");

type Gql = <T>(query: string, variables?: Record<string, unknown>) => Promise<T>;
const client =
  (url: string): Gql =>
  (query, variables = {}) =>
    queryApi({ url }, query, variables);

/** The one payload of a mutation, failing on userErrors. */
async function mutate<T>(gql: Gql, query: string, input: Record<string, unknown>): Promise<T> {
  const data = await gql<Record<string, T & { userErrors: unknown[] }>>(query, { input });
  const payload = Object.values(data)[0]!;
  if (payload.userErrors.length) throw new Error(JSON.stringify(payload.userErrors));
  return payload;
}

interface JobTimes {
  stage: string;
  startedAt: string | null;
  finishedAt: string | null;
}
interface FinishedRun {
  kind: "E2E" | "INCUBATION";
  state: string;
  error: string | null;
  accuracy: number | null;
  startedAt: string;
  finishedAt: string;
  jobs: JobTimes[];
}

const seconds = (j: JobTimes) => (Date.parse(j.finishedAt!) - Date.parse(j.startedAt!)) / 1000;
/** PT, then the slowest MT job, then FT (E2E: its one job): the run's path on enough workers. */
function computedCriticalPath(jobs: JobTimes[]): number {
  const longest = (stage: string) => Math.max(0, ...jobs.filter((j) => j.stage === stage).map(seconds));
  return ["PRETRAIN", "MODULAR", "FINETUNE", "E2E"].reduce((s, stage) => s + longest(stage), 0);
}

async function runOnPlatform(
  databaseUrl: string,
  dataDir: string,
  o: { workers: number; threads: number },
  input: Record<string, unknown>,
): Promise<{ run: FinishedRun; measuredSeconds: number; compared: ComparedRun }> {
  const local: LocalPlatform = await startLocalPlatform({
    databaseUrl,
    dataDir,
    port: 0,
    host: "127.0.0.1",
    logger: pino({ level: "warn" }),
    bin: BIN,
    workers: o.workers,
    threads: o.threads,
    api: { dataRoots: [dataDir, args.data] },
    auth: { auth: "local" },
  });
  try {
    const gql = client(local.api.url);
    const started = performance.now();
    const { run } = await mutate<{ run: { id: string } }>(
      gql,
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message } } }`,
      input,
    );
    process.stderr.write(
      `${new Date().toISOString()} ${input.kind} run ${run.id} started (${o.workers} worker(s) × ${o.threads} thread(s))\n`,
    );
    for (;;) {
      const { node } = await gql<{ node: FinishedRun }>(
        `query ($id: ID!) { node(id: $id) { ... on Run { kind state error accuracy startedAt finishedAt
          jobs { stage startedAt finishedAt } } } }`,
        { id: run.id },
      );
      if (node.state === "SUCCEEDED") {
        const measuredSeconds = (performance.now() - started) / 1000;
        process.stderr.write(
          `${new Date().toISOString()} ${input.kind} done in ${measuredSeconds.toFixed(1)} s, accuracy ${node.accuracy}\n`,
        );
        // The curve as `incubator compare <run-id>` reads it, while this platform still serves it.
        const compared = await fetchComparedRun({ url: local.api.url }, run.id, String(input.kind));
        return { run: node, measuredSeconds, compared };
      }
      if (node.state === "FAILED" || node.state === "CANCELLED")
        throw new Error(`${input.kind} run ${node.state}: ${node.error}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await local.close();
  }
}

const dataDir = mkdtempSync(join(tmpdir(), "incubator-platform-tta-"));
const database = await openBenchDatabase(dataDir, "platform_tta");
try {
  const setup = await startLocalPlatform({
    databaseUrl: database.url,
    dataDir,
    port: 0,
    host: "127.0.0.1",
    logger: pino({ level: "warn" }),
    bin: BIN,
    workers: 0,
    api: { dataRoots: [dataDir, args.data] },
    auth: { auth: "local" },
  });
  const gql = client(setup.api.url);
  const { architecture } = await mutate<{ architecture: { id: string } }>(
    gql,
    `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { field message } } }`,
    { name: `tta-depth${size.depth}`, ...ARCH },
  );
  const { dataset } = await mutate<{ dataset: { id: string } }>(
    gql,
    `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { field message } } }`,
    { name: "fashion-mnist", spec: { format: "idx", path: args.data } },
  );
  await setup.close();
  // The fashion-mnist preset's recipe, as time-to-accuracy.sh trains with it (the platform's
  // plain "deit" recipe has DeiT's Mixup/CutMix and learning rate, made for ImageNet epochs).
  const preset = RUN_PRESETS["fashion-mnist"]!.recipe as Record<string, unknown> & { name?: string };
  const { name: recipeName, steps: _steps, ...presetRecipe } = preset;
  const common = {
    architectureId: architecture.id,
    datasetId: dataset.id,
    seed,
    recipe: recipeName ?? "deit",
  };
  const recipe = { ...presetRecipe, evalEvery: size.evalEvery, evalSubset: size.evalSubset };
  const e2e = await runOnPlatform(
    database.url,
    dataDir,
    { workers: 1, threads },
    {
      ...common,
      kind: "E2E",
      overrides: { ...recipe, steps: { e2e: size.e2e } },
    },
  );
  const di = await runOnPlatform(
    database.url,
    dataDir,
    { workers, threads: Math.max(1, Math.floor(threads / workers)) },
    {
      ...common,
      kind: "INCUBATION",
      overrides: {
        ...recipe,
        steps: { pretrain: size.pretrain, modular: size.modular, finetune: size.finetune },
      },
    },
  );
  const comparison = compareRuns(di.compared, e2e.compared);
  const result = {
    seed,
    size,
    workers,
    threads,
    date: new Date().toISOString(),
    e2e: {
      accuracy: e2e.run.accuracy,
      measuredSeconds: e2e.measuredSeconds,
      computedCriticalPathSeconds: computedCriticalPath(e2e.run.jobs),
    },
    incubation: {
      accuracy: di.run.accuracy,
      measuredSeconds: di.measuredSeconds,
      computedCriticalPathSeconds: computedCriticalPath(di.run.jobs),
    },
    measuredSpeedUp: e2e.measuredSeconds / di.measuredSeconds,
    targetAccuracy: comparison.targetAccuracy,
    speedUps: comparison.speedUps,
  };
  console.log(JSON.stringify(result, null, 2));
  if (args.out) writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await database.close();
  rmSync(dataDir, { recursive: true, force: true });
}
