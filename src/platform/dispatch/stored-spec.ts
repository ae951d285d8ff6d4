/**
 * `job.spec` read back from the database (or from a worker API claim): parsed once, here, with
 * the same validators the spec's parts have where they are made — the ViT config's rules, the
 * data layer's dataset schema, the recipe schema — instead of cast where it is used.
 */
import { z } from "zod";
import { datasetSpecSchema } from "../../data/registry.ts";
import { type VitConfig, validateVitConfig } from "../../engine/models/vit.ts";
import { recipeSchema } from "../../incubation/recipe.ts";
import type { StoredJobSpec } from "./plan.ts";

const vitConfig = z.custom<VitConfig>((value) => {
  try {
    validateVitConfig(value as VitConfig);
    return true;
  } catch {
    return false;
  }
}, "is not a valid ViT config");

const index = z.number().int().min(0);

const storedJobSpec = z.looseObject({
  phase: z.enum(["pretrain", "modular", "finetune", "e2e"]),
  target: vitConfig,
  split: z.array(z.number().int().min(1)).min(1),
  moduleIndex: index.optional(),
  dataset: datasetSpecSchema,
  evalDataset: datasetSpecSchema.optional(),
  recipe: recipeSchema,
  seed: z.number().int(),
  metaWeights: z.string().optional(),
  meta: vitConfig.optional(),
  checkpointEvery: z.number().int().min(1).optional(),
  datasetId: z.uuid().optional(),
});

/** A stored job spec, validated; a row that does not parse is a bug, reported with the job's id. */
export function parseStoredJobSpec(json: unknown, jobId: string): StoredJobSpec {
  const parsed = storedJobSpec.safeParse(json);
  if (!parsed.success)
    throw new Error(`job ${jobId}: stored spec is invalid: ${z.prettifyError(parsed.error)}`);
  // The parsed value keeps every field (loose object); its parts were checked above.
  return json as StoredJobSpec;
}
