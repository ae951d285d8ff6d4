/**
 * Run configuration for `incubator incubate` / `incubator train`: a JSON file or a named preset,
 * plus `--set path=value` overrides. Resolved into a validated target, split, data and recipe.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { FASHION_MNIST_NORMALIZATION } from "../data/normalization.ts";
import { type DatasetSpec, parseDatasetSpec } from "../data/registry.ts";
import { VIT_DEFAULTS, type VitConfig, validateVitConfig, vitPreset } from "../engine/models/vit.ts";
import { planFromMeasurement } from "./cost-model.ts";
import { metaConfigFor, resolveSplit } from "./modules.ts";
import { type Recipe, type RecipeOverrides, resolveRecipe } from "./recipe.ts";
import type { SplitPlan } from "./split-planner.ts";

const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

const modelSchema = z.union([
  z.string(),
  z
    .object({
      preset: z.string().optional(),
      imageSize: z.number().int().positive().optional(),
      channels: z.number().int().positive().optional(),
      patchSize: z.number().int().positive().optional(),
      width: z.number().int().positive().optional(),
      depth: z.number().int().positive().optional(),
      heads: z.number().int().positive().optional(),
      mlpRatio: z.number().positive().optional(),
      qkvBias: z.boolean().optional(),
      layerNormEps: z.number().positive().optional(),
      numClasses: z.number().int().positive().optional(),
      dropPathRate: z.number().min(0).lt(1).optional(),
    })
    .strict(),
]);

const AUTO_K = "{auto: K} takes the module count K, a positive integer";

/** How the target is split: fixed (K or a block list) or planned (`split-planner.ts`). */
const modulesSchema = z.union(
  [
    z.number().int().positive(),
    z.array(z.number().int().positive()),
    z.literal("auto"),
    z
      .object({
        auto: z.number({ error: AUTO_K }).int({ error: AUTO_K }).positive({ error: AUTO_K }),
      })
      .strict(),
  ],
  {
    error: () =>
      'expected K (a positive integer), blocks per module such as [4,3,3,4], "auto", or {"auto": K}',
  },
);
export type ModulesSetting = z.infer<typeof modulesSchema>;

/** The module count a planned `modules` setting asks for ("auto": the planner chooses), or null when the split is fixed. */
export function plannedModules(modules: ModulesSetting): number | "auto" | null {
  if (modules === "auto") return "auto";
  if (typeof modules === "object" && !Array.isArray(modules)) return modules.auto;
  return null;
}

export const runConfigSchema = z
  .object({
    /** A preset name (vit-small-16, deit-t-12, …) or fields, optionally on top of `preset`. */
    model: modelSchema,
    /**
     * The meta model's architecture where it differs from the target's (one block per module,
     * the target's heads/patch/classes): another width is joined to the target by width adapters.
     */
    meta: z
      .object({
        width: z.number().int().positive().optional(),
        mlpRatio: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    /**
     * K (split evenly), blocks per module such as [4,3,3,4], "auto" (K and boundaries from the
     * split planner, measured on this machine) or { auto: K } (K given, boundaries planned).
     */
    modules: modulesSchema.default(4),
    dataset: z.record(z.string(), z.unknown()),
    evalDataset: z.record(z.string(), z.unknown()).optional(),
    /** A recipe name, or { name, …overrides }. */
    recipe: z
      .union([z.string(), z.object({ name: z.string().default("deit") }).passthrough()])
      .default("deit"),
    seed: z.number().int().min(0).default(0),
    workers: z.number().int().positive().default(1),
    decentralized: z.boolean().default(false),
    evalLimit: z.number().int().positive().optional(),
    checkpointEvery: z.number().int().positive().optional(),
    threads: z.number().int().positive().optional(),
  })
  .strict();

export type RunConfigInput = z.input<typeof runConfigSchema>;

export interface RunConfig {
  target: VitConfig;
  split: number[];
  /** How `split` was planned, when `modules` asked for it ("auto" / {auto: K}). */
  plan?: SplitPlan;
  /** The meta model PT trains and MT reads (one block per module). */
  meta: VitConfig;
  dataset: DatasetSpec;
  evalDataset?: DatasetSpec;
  recipe: Recipe;
  seed: number;
  workers: number;
  decentralized: boolean;
  evalLimit?: number;
  checkpointEvery?: number;
  threads?: number;
}

/** Small, fast settings for short CPU runs: light augmentation, no Mixup, a higher lr. */
const SHORT_RUN_RECIPE = {
  name: "deit",
  batchSize: 64,
  baseLr: 4e-3,
  mixup: 0,
  cutmix: 0,
  warmupFraction: 0.1,
  augment: { crop: { kind: "padded", padding: 2 }, hflip: 0.5 },
};

export const RUN_PRESETS: Record<string, RunConfigInput> = {
  /** The zero-setup demo and the CI end-to-end run: synthetic data, a minute or two on 2 cores. */
  demo: {
    model: { imageSize: 16, channels: 3, patchSize: 4, width: 64, depth: 8, heads: 4, numClasses: 10 },
    modules: 4,
    dataset: {
      format: "synthetic",
      split: "train",
      length: 4000,
      numClasses: 10,
      channels: 3,
      imageSize: 16,
      seed: 1,
    },
    evalDataset: {
      format: "synthetic",
      split: "test",
      length: 1000,
      numClasses: 10,
      channels: 3,
      imageSize: 16,
      seed: 1,
    },
    recipe: { ...SHORT_RUN_RECIPE, steps: { pretrain: 150, modular: 100, finetune: 100, e2e: 350 } },
  },
  /** A deep, narrow ViT on Fashion-MNIST (apt-get install dataset-fashion-mnist). */
  "fashion-mnist": {
    model: { imageSize: 28, channels: 1, patchSize: 4, width: 64, depth: 16, heads: 4, numClasses: 10 },
    modules: 4,
    dataset: { format: "idx", path: FASHION_MNIST_DIR, split: "train" },
    evalDataset: { format: "idx", path: FASHION_MNIST_DIR, split: "test" },
    recipe: {
      ...SHORT_RUN_RECIPE,
      augment: { crop: { kind: "padded", padding: 2 }, hflip: 0.5, normalize: FASHION_MNIST_NORMALIZATION },
      steps: { pretrain: 900, modular: 700, finetune: 700, e2e: 3000 },
    },
  },
};

/** Set `a.b.c = value` in a plain object (creating objects on the way); value parsed as JSON if it can be. */
export function setPath(target: Record<string, unknown>, path: string, raw: string): void {
  const keys = path.split(".");
  if (keys.some((k) => !k)) throw new Error(`--set ${path}: empty key in path`);
  let node: Record<string, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next === "string" && key === "recipe") node[key] = { name: next };
    else if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // a bare string
  }
  node[keys.at(-1)!] = value;
}

/** The config as given (preset or file) with `--set` overrides applied, before validation. */
function rawRunConfig(source: string, overrides: string[]): Record<string, unknown> {
  let raw: Record<string, unknown>;
  const preset = RUN_PRESETS[source];
  if (preset) raw = structuredClone(preset) as Record<string, unknown>;
  else {
    try {
      raw = JSON.parse(readFileSync(source, "utf8"));
    } catch (error) {
      throw new Error(
        `--config: "${source}" is neither a preset (${Object.keys(RUN_PRESETS).join(", ")}) nor a readable JSON file: ${(error as Error).message}`,
      );
    }
  }
  for (const entry of overrides) {
    const eq = entry.indexOf("=");
    if (eq <= 0) throw new Error(`--set expects path=value, got "${entry}"`);
    setPath(raw, entry.slice(0, eq), entry.slice(eq + 1));
  }
  return raw;
}

/** A config whose split is fixed (`modules` K or a list); a planned one needs `loadPlannedRunConfig`. */
export function loadRunConfig(source: string, overrides: string[] = []): RunConfig {
  return resolveRunConfig(rawRunConfig(source, overrides));
}

/**
 * Any config, `modules: "auto"` / {auto: K} included: a planned split is measured on this
 * machine (cost-model.ts) and the plan is kept in `plan`. `threads`: what each MT job will get.
 * `modules`: forces K (a given meta model fixes it).
 */
export async function loadPlannedRunConfig(
  source: string,
  overrides: string[] = [],
  opts: { threads?: number; modules?: number } = {},
): Promise<RunConfig> {
  return resolvePlannedRunConfig(rawRunConfig(source, overrides), opts);
}

export async function resolvePlannedRunConfig(
  raw: Record<string, unknown>,
  opts: { threads?: number; modules?: number } = {},
): Promise<RunConfig> {
  const c = parseRunConfig(raw);
  const planned = plannedModules(c.modules);
  if (planned === null) return resolveRunConfig(raw);
  const target = resolveTarget(c);
  const recipe = resolveRunRecipe(c);
  const modules = opts.modules ?? planned;
  // Refuse an impossible K before spending seconds measuring.
  if (modules !== "auto") withContext("modules", () => resolveSplit(target.depth, modules));
  const { plan } = await planFromMeasurement({
    target,
    ...(c.meta ? { metaOverrides: c.meta } : {}),
    recipe,
    modules,
    ...(opts.threads ? { threads: opts.threads } : {}),
  });
  return { ...resolveRunConfig({ ...raw, modules: plan.split }), plan };
}

function parseRunConfig(raw: unknown) {
  const parsed = runConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`config.${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

type ParsedRunConfig = ReturnType<typeof parseRunConfig>;

const withContext = <T>(field: string, fn: () => T): T => {
  try {
    return fn();
  } catch (error) {
    throw new Error(`config.${field}: ${(error as Error).message}`);
  }
};

function resolveRunRecipe(c: ParsedRunConfig): Recipe {
  const { name, ...recipeOverrides } = typeof c.recipe === "string" ? { name: c.recipe } : c.recipe;
  return withContext("recipe", () => resolveRecipe(name as string, recipeOverrides as RecipeOverrides));
}

function resolveTarget(c: ParsedRunConfig): VitConfig {
  if (typeof c.model === "string") return vitPreset(c.model);
  const { preset, ...fields } = c.model;
  const base = preset
    ? vitPreset(preset)
    : { ...VIT_DEFAULTS, imageSize: 224, patchSize: 16, width: 192, depth: 12, heads: 3 };
  return validateVitConfig({ ...base, ...fields } as VitConfig);
}

export function resolveRunConfig(raw: unknown): RunConfig {
  const c = parseRunConfig(raw);
  const planned = plannedModules(c.modules);
  if (planned !== null) {
    throw new Error(
      `config.modules: ${JSON.stringify(c.modules)} is planned by measuring this machine; resolve the config with loadPlannedRunConfig (incubator incubate does), or give K or blocks per module`,
    );
  }
  const target = resolveTarget(c);
  const split = withContext("modules", () => resolveSplit(target.depth, c.modules as number | number[]));
  return {
    target,
    split,
    meta: withContext("meta", () => metaConfigFor(target, split.length, c.meta ?? {})),
    dataset: withContext("dataset", () => parseDatasetSpec(c.dataset)),
    ...(c.evalDataset
      ? { evalDataset: withContext("evalDataset", () => parseDatasetSpec(c.evalDataset)) }
      : {}),
    recipe: resolveRunRecipe(c),
    seed: c.seed,
    workers: c.workers,
    decentralized: c.decentralized,
    ...(c.evalLimit ? { evalLimit: c.evalLimit } : {}),
    ...(c.checkpointEvery ? { checkpointEvery: c.checkpointEvery } : {}),
    ...(c.threads ? { threads: c.threads } : {}),
  };
}
