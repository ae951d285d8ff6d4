/** The tiny ViT and synthetic data the end-to-end tests train (seconds per job on one CPU thread). */
import { postGraphQL } from "./graphql.ts";

export const TINY_VIT = {
  imageSize: 8,
  channels: 3,
  patchSize: 4,
  width: 32,
  depth: 4,
  heads: 2,
  numClasses: 4,
};
export const TINY_DATA = { format: "synthetic", numClasses: 4, channels: 3, imageSize: 8, seed: 3 };

/** A mutation whose payload has userErrors; throws on errors or userErrors. */
export async function mutate<T>(url: string, query: string, input: Record<string, unknown>): Promise<T> {
  const res = await postGraphQL<Record<string, T & { userErrors: unknown[] }>>(url, query, { input });
  const payload = Object.values(res.data ?? {})[0];
  if (res.errors || !payload || payload.userErrors.length)
    throw new Error(JSON.stringify(res.errors ?? payload?.userErrors));
  return payload;
}

/** createArchitecture (K = 4) and registerDataset over GraphQL; their global IDs. */
export async function createTinyArchitectureAndDataset(
  url: string,
  name: string,
  length: number,
): Promise<{ architectureId: string; datasetId: string }> {
  const arch = await mutate<{ architecture: { id: string } }>(
    url,
    `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { message } } }`,
    { name, ...TINY_VIT, modules: 4 },
  );
  const dataset = await mutate<{ dataset: { id: string } }>(
    url,
    `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { message } } }`,
    { name: `${name}-data`, spec: { ...TINY_DATA, length } },
  );
  return { architectureId: arch.architecture.id, datasetId: dataset.dataset.id };
}

/** Recipe overrides for runs of a few seconds: small batches, no Mixup/CutMix or augmentation. */
export const tinyOverrides = (steps: Record<string, number>) => ({
  batchSize: 16,
  mixup: 0,
  cutmix: 0,
  baseLr: 0.01,
  augment: {},
  steps,
});

type Artifact = { kind: string; sha256: string; sizeBytes: number };

export interface FinishedRun {
  /** The run's database id (the uuid inside its global ID). */
  id: string;
  state: string;
  error: string | null;
  artifacts: Artifact[];
  modules: { index: number; state: string; jobs: { workerId: string | null; artifacts: Artifact[] }[] }[];
}

/**
 * startRun with `input`, then poll until the run ends; a run that does not succeed fails the
 * test with its error and `diagnostics()` (e.g. a worker's output).
 */
export async function runTinyToEnd(
  url: string,
  input: Record<string, unknown>,
  o: { timeoutMs: number; diagnostics?: () => string },
): Promise<FinishedRun> {
  const { run } = await mutate<{ run: { id: string } }>(
    url,
    `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message } } }`,
    input,
  );
  const query = `query ($id: ID!) { node(id: $id) { ... on Run { state error
    artifacts { kind sha256 sizeBytes } modules { index state jobs { workerId artifacts { kind sha256 sizeBytes } } } } } }`;
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const res = await postGraphQL<{ node: Omit<FinishedRun, "id"> }>(url, query, { id: run.id });
    const node = res.data?.node;
    if (!node) throw new Error(JSON.stringify(res.errors));
    if (["SUCCEEDED", "FAILED", "CANCELLED"].includes(node.state)) {
      if (node.state !== "SUCCEEDED")
        throw new Error(`run ${node.state}: ${node.error}\n${o.diagnostics?.() ?? ""}`);
      return { id: Buffer.from(run.id, "base64url").toString().split(":")[1]!, ...node };
    }
    if (Date.now() > deadline) throw new Error(`run still ${node.state}\n${o.diagnostics?.() ?? ""}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
