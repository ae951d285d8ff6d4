/**
 * `incubator compare` on a platform run: its kind, final accuracy and `accuracyCurve` read
 * through the GraphQL API, as the same `ComparedRun` a results.json gives.
 */
import { existsSync } from "node:fs";
import { parseGlobalId } from "../api/global-id.ts";
import type { AccuracyPoint } from "../incubation/accuracy-curve.ts";
import type { Phase } from "../incubation/recipe.ts";
import { type ComparedRun, comparedRun, loadComparedRun } from "../incubation/time-to-accuracy.ts";
import { API_TOKEN_ENV, API_URL_ENV, ApiClientError, type ApiTarget, queryApi } from "./api-client.ts";

/** What the API returns for a run (schema.graphql `Run`, `AccuracyPoint`). */
interface RunRow {
  __typename: string;
  kind?: "INCUBATION" | "E2E" | "META_PRETRAIN";
  state?: string;
  error?: string | null;
  accuracy?: number | null;
  result?: { wallSeconds?: number | null } | null;
  accuracyCurve?: (Omit<AccuracyPoint, "stage"> & { stage: Uppercase<Phase> })[];
}

export const RUN_QUERY = `query ($id: ID!) { node(id: $id) { __typename ... on Run {
  kind state error accuracy result
  accuracyCurve { stage moduleIndex step jobSeconds criticalPathSeconds computeSeconds accuracy loss } } } }`;

/** A results.json, a run folder, or else a run ID on the API: where `value` points. */
export async function loadComparedArgument(
  value: string,
  argument: string,
  api: () => ApiTarget,
): Promise<ComparedRun> {
  if (existsSync(value)) return loadComparedRun(value, argument);
  if (parseGlobalId(value)?.type !== "Run")
    throw new Error(
      `${argument}: "${value}" is neither a file, a run's output folder nor a run ID; give a results.json, its folder, or the ID startRun returned`,
    );
  return fetchComparedRun(api(), value, argument);
}

/** A finished INCUBATION or E2E run on the platform; errors name `argument` and the fix. */
export async function fetchComparedRun(api: ApiTarget, id: string, argument: string): Promise<ComparedRun> {
  let run: RunRow | null;
  try {
    run = (await queryApi<{ node: RunRow | null }>(api, RUN_QUERY, { id })).node;
  } catch (error) {
    if (!(error instanceof ApiClientError)) throw error;
    const fix: Record<ApiClientError["kind"], string> = {
      unreachable: `start the platform (\`incubator serve\`) or give its URL with --api <url> (or ${API_URL_ENV})`,
      refused: `give an API token that reaches the run with --token inc_at_… (or ${API_TOKEN_ENV}); an admin creates one with \`incubator token create\``,
      query: "check the run ID",
    };
    throw new Error(`${argument}: run ${id}: ${error.message}; ${fix[error.kind]}`);
  }
  if (!run)
    throw new Error(
      `${argument}: no run ${id} on ${api.url} (or not in your token's projects); check the ID (the one startRun returned)`,
    );
  if (run.__typename !== "Run") throw new Error(`${argument}: ${id} is a ${run.__typename}, not a Run`);
  if (run.kind !== "INCUBATION" && run.kind !== "E2E")
    throw new Error(
      `${argument}: run ${id} is a ${run.kind} run, which trains no target; compare INCUBATION or E2E runs`,
    );
  if (run.state !== "SUCCEEDED") {
    const why =
      run.state === "QUEUED" || run.state === "RUNNING"
        ? `has not finished (${run.state}); compare it once it has succeeded`
        : `did not succeed (${run.state}${run.error ? `: ${run.error}` : ""}); compare a run that succeeded`;
    throw new Error(`${argument}: run ${id} ${why}`);
  }
  const curve = (run.accuracyCurve ?? []).map((p) => ({ ...p, stage: p.stage.toLowerCase() as Phase }));
  const fix = "start it with overrides.evalEvery > 0 on a dataset with a test split";
  if (curve.length === 0) throw new Error(`${argument}: run ${id} has no accuracy curve recorded; ${fix}`);
  return comparedRun(
    {
      label: id,
      kind: run.kind === "E2E" ? "e2e" : "incubation",
      accuracy: run.accuracy ?? null,
      criticalPathSeconds: criticalPath(curve, run.result?.wallSeconds ?? null),
      curve,
    },
    `${argument}: run ${id}`,
    fix,
  );
}

/**
 * The run's critical path: where its final job started on that clock (its points' offset, PT and
 * the slowest MT job for incubation) plus the job's wall seconds; without them, its last point.
 */
function criticalPath(curve: AccuracyPoint[], finalJobSeconds: number | null): number {
  const last = curve.filter((p) => p.stage === "finetune" || p.stage === "e2e").at(-1);
  if (!last) return 0;
  if (finalJobSeconds === null) return last.criticalPathSeconds;
  return last.criticalPathSeconds - last.jobSeconds + finalJobSeconds;
}
