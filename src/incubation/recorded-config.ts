/**
 * The resolved configuration a local run records in its `results.json` (`config`), so that its
 * outputs can be read back later — `incubator eval-stages` rebuilds the meta model, the hybrids
 * and the target from it — without knowing which preset and `--set` overrides started the run,
 * and without a later change to a preset changing what an old run means.
 */
import { parseDatasetSpec } from "../data/registry.ts";
import { type VitConfig, validateVitConfig } from "../engine/models/vit.ts";
import type { RunConfig } from "./config.ts";
import { resolveSplit } from "./modules.ts";
import { recipeSchema } from "./recipe.ts";

/** What a run's outputs are read back with: the architecture, split, data, recipe and seed. */
export type RecordedConfig = Pick<
  RunConfig,
  "target" | "split" | "meta" | "dataset" | "evalDataset" | "recipe" | "seed" | "decentralized" | "evalLimit"
>;

/** The fields of a resolved run config that `results.json` keeps. */
export function recordedConfig(config: RecordedConfig): RecordedConfig {
  return {
    target: config.target,
    split: config.split,
    meta: config.meta,
    dataset: config.dataset,
    ...(config.evalDataset ? { evalDataset: config.evalDataset } : {}),
    recipe: config.recipe,
    seed: config.seed,
    decentralized: config.decentralized,
    ...(config.evalLimit ? { evalLimit: config.evalLimit } : {}),
  };
}

/** `results.json`'s `config`, checked field by field; errors name the field (`config.target: …`). */
export function parseRecordedConfig(raw: unknown): RecordedConfig {
  if (typeof raw !== "object" || raw === null) throw new Error("config: not an object");
  const c = raw as Record<string, unknown>;
  const field = <T>(name: string, parse: (value: unknown) => T): T => {
    if (c[name] === undefined) throw new Error(`config.${name}: missing`);
    try {
      return parse(c[name]);
    } catch (error) {
      throw new Error(`config.${name}: ${(error as Error).message}`);
    }
  };
  const vit = (value: unknown) => validateVitConfig(value as VitConfig);
  const target = field("target", vit);
  const recipe = field("recipe", (value) => {
    const parsed = recipeSchema.safeParse(value);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.join(".")}: ${issue.message}`);
  });
  const integer = (value: unknown) => {
    if (!Number.isInteger(value)) throw new Error(`not a whole number: ${JSON.stringify(value)}`);
    return value as number;
  };
  return {
    target,
    split: field("split", (value) => resolveSplit(target.depth, value as number[])),
    meta: field("meta", vit),
    dataset: field("dataset", parseDatasetSpec),
    ...(c.evalDataset !== undefined ? { evalDataset: field("evalDataset", parseDatasetSpec) } : {}),
    recipe,
    seed: field("seed", integer),
    decentralized: c.decentralized === true,
    ...(c.evalLimit !== undefined ? { evalLimit: field("evalLimit", integer) } : {}),
  };
}
