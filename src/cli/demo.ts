/**
 * `incubator demo`: the platform end to end, as a newcomer sees it. Starts the platform (embedded
 * PostgreSQL unless DATABASE_URL is set) with a local worker, registers an architecture and the
 * synthetic dataset, starts an INCUBATION run — all through the GraphQL API, as a client would —
 * follows it over the runEvents subscription with a progress bar per job, and ends with the
 * accuracy, where the ONNX model is, and queries to explore the lineage.
 */
import { randomBytes } from "node:crypto";
import cliProgress from "cli-progress";
import { Command } from "commander";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { RUN_PRESETS } from "../incubation/config.ts";
import { createApiToken } from "../platform/auth/api-tokens.ts";
import { DEFAULT_PROJECT_NAME } from "../platform/auth/projects.ts";
import { createLogger } from "../platform/logger.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";
import { startConfiguredPlatform } from "./platform.ts";
import { onShutdownSignal } from "./shutdown.ts";

interface GraphQLResult<T> {
  data?: T;
  errors?: { message: string }[];
}

/** The API token the demo sends when the platform needs one (AUTH_MODE=tokens); local mode needs none. */
let token: string | undefined;
const authorization = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

async function gql<T>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...authorization() },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as GraphQLResult<T>;
  if (body.errors?.length) throw new Error(`GraphQL: ${body.errors.map((e) => e.message).join("; ")}`);
  return body.data!;
}

interface Payload {
  userErrors: { field: string[] | null; message: string; code: string }[];
}

function check<T extends Payload>(payload: T, what: string): T {
  const [first] = payload.userErrors;
  if (first && first.code !== "TAKEN")
    throw new Error(`${what}: ${first.field?.join(".") ?? ""} ${first.message}`);
  return payload;
}

const demo = RUN_PRESETS.demo!;
const DEMO_MODEL = demo.model as Record<string, number>;
const DEMO_DATA = demo.dataset as Record<string, unknown>;
const DEMO_RECIPE = demo.recipe as Record<string, unknown>;

/**
 * The demo architecture and dataset, created on first use and found by name afterwards — in the
 * project the demo creates in ("default": local mode or a token of every project), since names
 * are unique per project only.
 */
async function ensureFixtures(url: string): Promise<{ architectureId: string; datasetId: string }> {
  const arch = check(
    (
      await gql<{ createArchitecture: Payload & { architecture: { id: string } | null } }>(
        url,
        `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { field message code } } }`,
        { input: { name: "demo-vit-d8-w64", ...DEMO_MODEL, modules: 4 } },
      )
    ).createArchitecture,
    "createArchitecture",
  );
  const data = check(
    (
      await gql<{ registerDataset: Payload & { dataset: { id: string } | null } }>(
        url,
        `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { field message code } } }`,
        { input: { name: "demo-synthetic-10", spec: { ...DEMO_DATA, split: undefined } } },
      )
    ).registerDataset,
    "registerDataset",
  );
  type Named = { nodes: { id: string; name: string; project: { name: string } }[] };
  const lists = await gql<{ architectures: Named; datasets: Named }>(
    url,
    `{ architectures(first: 100) { nodes { id name project { name } } }
       datasets(first: 100) { nodes { id name project { name } } } }`,
  );
  const find = (list: Named, name: string) =>
    list.nodes.find((n) => n.name === name && n.project.name === DEFAULT_PROJECT_NAME)!.id;
  return {
    architectureId: arch.architecture?.id ?? find(lists.architectures, "demo-vit-d8-w64"),
    datasetId: data.dataset?.id ?? find(lists.datasets, "demo-synthetic-10"),
  };
}

/** The fields of the run's events the demo selects (schema.graphql: RunEvent and its types). */
type RunEvent = { seq: number; moduleIndex: number | null } & (
  | {
      type: "PROGRESS";
      stage: string;
      step: number;
      totalSteps: number;
      loss: number;
      imagesPerSecond: number;
    }
  | { type: "RUN_STATE"; state: string }
  | { type: Exclude<string, "PROGRESS" | "RUN_STATE"> }
);

const EVENTS_SUBSCRIPTION = `subscription ($runId: ID!) { runEvents(runId: $runId) {
  seq type moduleIndex
  ... on TrainingProgress { stage step totalSteps loss imagesPerSecond }
  ... on RunStateChanged { state error finalAccuracy }
  ... on JobStateChanged { stage jobState: state attempt workerId reason }
  ... on ModuleStateChanged { moduleState: state }
  ... on LogMessage { level message }
} }`;

/** Follow a run's events with a bar per job until its final state; returns that state. */
function follow(wsUrl: string, runId: string, label: string, json: boolean): Promise<string> {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: authorization });
  const bars = json
    ? null
    : new cliProgress.MultiBar(
        {
          format: ` ${label} {job} |{bar}| {value}/{total} · loss {loss} · {ips} img/s · ETA {eta_formatted}`,
          barsize: 28,
          hideCursor: true,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      );
  const byJob = new Map<string, cliProgress.SingleBar>();
  let final = "UNKNOWN";
  return new Promise((resolve, reject) => {
    client.subscribe<{ runEvents: RunEvent }>(
      {
        query: EVENTS_SUBSCRIPTION,
        variables: { runId },
      },
      {
        next: ({ data }) => {
          const event = data!.runEvents;
          if (json) process.stdout.write(`${JSON.stringify({ run: label, ...event })}\n`);
          if (event.type === "PROGRESS" && "step" in event && bars) {
            const job = (event.moduleIndex !== null ? `module-${event.moduleIndex}` : event.stage).padEnd(9);
            let bar = byJob.get(job);
            if (!bar) {
              bar = bars.create(event.totalSteps, 0, { job, loss: "-", ips: "-" });
              byJob.set(job, bar);
            }
            bar.setTotal(event.totalSteps);
            bar.update(event.step, {
              job,
              loss: event.loss.toFixed(4),
              ips: Math.round(event.imagesPerSecond),
            });
          }
          if (event.type === "RUN_STATE" && "state" in event) final = event.state;
        },
        error: (error) => {
          bars?.stop();
          void client.dispose();
          reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
        },
        complete: () => {
          bars?.stop();
          void client.dispose();
          resolve(final);
        },
      },
    );
  });
}

const RUN_QUERY = `query ($id: ID!) { node(id: $id) { ... on Run { id state error accuracy result
  finalModel { kind sha256 sizeBytes downloadUrl }
  modules { index blockStart blockEnd state } } } }`;

interface RunView {
  id: string;
  state: string;
  error: string | null;
  accuracy: number | null;
  result: { wallSeconds?: number } | null;
  finalModel: { sha256: string; downloadUrl: string } | null;
}

async function startRun(
  url: string,
  ids: { architectureId: string; datasetId: string },
  kind: string,
  seed: number,
) {
  const { startRun } = await gql<{ startRun: Payload & { run: { id: string } | null } }>(
    url,
    `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message code } } }`,
    { input: { kind, ...ids, recipe: "deit", overrides: { ...DEMO_RECIPE, name: undefined }, seed } },
  );
  const [problem] = startRun.userErrors;
  if (problem || !startRun.run) throw new Error(`startRun: ${problem?.message ?? "no run returned"}`);
  return startRun.run.id;
}

export function demoCommand(): Command {
  return new Command("demo")
    .description(
      "start the platform and run a small Deep Incubation through the GraphQL API, with live progress",
    )
    .option("--compare-e2e", "also train the same model end to end and compare")
    .option("--seed <n>", "random seed", "0")
    .option("--keep-serving", "keep the platform running afterwards (Ctrl-C stops it)")
    .option("--json", "print every run event as a JSON line instead of progress bars")
    .action(async (opts: { compareE2e?: boolean; seed: string; keepServing?: boolean; json?: boolean }) => {
      const config = loadConfigOrExit();
      const logger = createLogger(config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL);
      const say = (line: string) => process.stderr.write(`${line}\n`);
      const local = await startConfiguredPlatform(config, logger, 1).catch((error) => exitWithError(error));
      onShutdownSignal(logger, () => local.close());
      const { url, wsUrl } = local.api;
      if (local.api.authMode === "tokens") {
        // Made by the same code as `incubator token create`; it expires with the day.
        const name = `demo-${randomBytes(4).toString("hex")}`;
        const expiresAt = new Date(Date.now() + 86_400_000);
        token = (await createApiToken(local.platform.db, { name, role: "OPERATOR", expiresAt })).secret;
      }
      say(
        `incubator platform up: ${url} (${local.platform.database.embedded ? "embedded PostgreSQL" : "DATABASE_URL"})`,
      );
      say(
        `dashboard: ${local.api.dashboardUrl}${local.api.authMode === "tokens" ? ` (paste token ${token} in its Settings)` : ""}`,
      );
      try {
        const ids = await ensureFixtures(url);
        const seed = Number(opts.seed);
        const runId = await startRun(url, ids, "INCUBATION", seed);
        say(`started INCUBATION run ${runId}: meta pre-training, then 4 modules, assembly, fine-tuning`);
        await follow(wsUrl, runId, "DI ", Boolean(opts.json));
        const run = (await gql<{ node: RunView }>(url, RUN_QUERY, { id: runId })).node;
        let e2e: RunView | undefined;
        if (opts.compareE2e) {
          const e2eId = await startRun(url, ids, "E2E", seed);
          say(`started the E2E baseline ${e2eId}`);
          await follow(wsUrl, e2eId, "E2E", Boolean(opts.json));
          e2e = (await gql<{ node: RunView }>(url, RUN_QUERY, { id: e2eId })).node;
        }
        const pct = (x: number | null) => (x === null ? "n/a" : `${(x * 100).toFixed(1)}%`);
        say("");
        if (run.state !== "SUCCEEDED") {
          say(`the run ended ${run.state}: ${run.error ?? ""}`);
          process.exitCode = 1;
        } else {
          const onnx = run.finalModel ? await local.artifacts.getFile(run.finalModel.sha256) : null;
          say(
            `Deep Incubation: test accuracy ${pct(run.accuracy)} on the synthetic 10-class set (chance 10%)`,
          );
          if (e2e)
            say(
              `E2E baseline:    test accuracy ${pct(e2e.accuracy)} (same target, ${DEMO_RECIPE_STEPS} steps end to end)`,
            );
          if (onnx) {
            say(`ONNX model: ${onnx}`);
            say(`  download: ${url.replace(/\/graphql$/, "")}${run.finalModel!.downloadUrl}`);
          }
          say("");
          say("Explore the lineage (POST to the URL above, or any GraphQL client):");
          say(
            `  { node(id: "${run.id}") { ... on Run { accuracy stages { kind state } modules { index state lineage { metaModel { width numModules sourceRun { id } } checkpoints { step sha256 } } } finalModel { downloadUrl assembledFrom { index } } } } }`,
          );
        }
        if (opts.keepServing) {
          say(
            `\nThe platform keeps serving at ${url} (dashboard: ${local.api.dashboardUrl}); Ctrl-C stops it.`,
          );
          return;
        }
      } catch (error) {
        await local.close();
        exitWithError(error);
      }
      await local.close();
      process.exit(process.exitCode ?? 0);
    });
}

const DEMO_RECIPE_STEPS = (DEMO_RECIPE.steps as { e2e: number }).e2e;
