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

async function mutate<T>(url: string, query: string, input: Record<string, unknown>): Promise<T> {
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
