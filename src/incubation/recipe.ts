/**
 * Training recipes: the official Deep Incubation settings (`deit`) and the DeiT-III variant
 * (`deit3`), every field overridable, resolved per phase.
 *
 * Phase rules from the official code, which hold whatever the overrides:
 *   PT (meta pre-training)  drop-path 0 (`dropPath.pretrain`), all parameters
 *   MT (modular training)   drop-path 0.1 over the hybrid's depth, only module i in the optimizer
 *   FT (fine-tuning)        all parameters, warmup 0, gradient clipping 1
 *   E2E (baseline)          the ordinary recipe end to end
 * Learning rate: baseLr × batch / 512 (the linear scaling rule), linear warmup, cosine to minLr.
 */
import { z } from "zod";
import type { AugmentConfig } from "../data/augment/pipeline.ts";
import type { OptimizerConfig } from "../engine/optim/types.ts";

export const PHASES = ["pretrain", "modular", "finetune", "e2e"] as const;
export type Phase = (typeof PHASES)[number];

const perPhase = <T extends z.ZodTypeAny>(value: T) =>
  z.object({ pretrain: value, modular: value, finetune: value, e2e: value }).strict();

export const recipeSchema = z
  .object({
    name: z.string().default("custom"),
    optimizer: z.enum(["adamw", "lamb", "sgd"]),
    /** Peak learning rate at batch 512; the run's peak is baseLr × batch / 512. */
    baseLr: z.number().positive(),
    minLr: z.number().min(0),
    /** Linear warmup as a fraction of each phase's steps (FT always 0). */
    warmupFraction: z.number().min(0).max(1),
    weightDecay: z.number().min(0),
    batchSize: z.number().int().min(1),
    labelSmoothing: z.number().min(0).lt(1),
    /** Mixup / CutMix Beta(α, α); 0 turns one off. With both on, each batch picks one (p = 0.5). */
    mixup: z.number().min(0),
    cutmix: z.number().min(0),
    /** Loss: softmax cross-entropy, or DeiT-III's binary cross-entropy (off by default: it did not help incubation). */
    loss: z.enum(["ce", "bce"]),
    /** Per-image augmentation for training (the data layer's config). */
    augment: z.custom<AugmentConfig>((v) => typeof v === "object" && v !== null),
    dropPath: perPhase(z.number().min(0).lt(1)),
    /** Global-norm gradient clipping per phase (0 = off). */
    clipGradNorm: perPhase(z.number().min(0)),
    /** Optimizer steps per phase. */
    steps: perPhase(z.number().int().min(0)),
    /**
     * The accuracy curve: every job scores its model on a fixed held-out subset every
     * `evalEvery` steps (and at its first and last step); 0 turns it off. Defaults cost about
     * 1 % of a job: `evalSubset` images are a few forward batches, a train step is forward and
     * backward.
     */
    evalEvery: z.number().int().min(0).default(100),
    /** The held-out images each curve point scores: the first `evalSubset` of the eval data. */
    evalSubset: z.number().int().min(1).default(256),
    /**
     * Activation recomputation: each transformer block's activations are rebuilt in the backward
     * pass from the block's input instead of kept from the forward pass — lower peak memory for
     * deep models, about one more forward pass per step (bench/RESULTS.md). Off by default;
     * stored specs from before the field read as off.
     */
    recomputeActivations: z
      .boolean({ error: "must be true or false (recompute block activations in the backward pass)" })
      .default(false),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;
export type RecipeOverrides = Partial<Omit<Recipe, "dropPath" | "clipGradNorm" | "steps">> & {
  dropPath?: Partial<Recipe["dropPath"]>;
  clipGradNorm?: Partial<Recipe["clipGradNorm"]>;
  steps?: Partial<Recipe["steps"]>;
};

const DEIT: Recipe = {
  name: "deit",
  optimizer: "adamw",
  baseLr: 5e-4,
  minLr: 1e-5,
  warmupFraction: 0.05,
  weightDecay: 0.05,
  batchSize: 128,
  labelSmoothing: 0.1,
  mixup: 0.8,
  cutmix: 1.0,
  loss: "ce",
  augment: {
    crop: { kind: "random-resized", scale: [0.08, 1] },
    hflip: 0.5,
    randAugment: { ops: 2, magnitude: 9 },
    randomErasing: { prob: 0.25 },
  },
  dropPath: { pretrain: 0, modular: 0.1, finetune: 0.1, e2e: 0.1 },
  clipGradNorm: { pretrain: 0, modular: 0, finetune: 1, e2e: 0 },
  steps: { pretrain: 1000, modular: 1000, finetune: 1000, e2e: 3000 },
  evalEvery: 100,
  evalSubset: 256,
  recomputeActivations: false,
};

const DEIT3: Recipe = {
  ...DEIT,
  name: "deit3",
  optimizer: "lamb",
  baseLr: 3e-3,
  weightDecay: 0.05,
  // DeiT-III's "simple random crop" is RandomCrop(padding=4, padding_mode="reflect").
  augment: { crop: { kind: "padded", padding: 4, mode: "reflect" }, hflip: 0.5, threeAugment: {} },
};

export const RECIPES: Record<string, Recipe> = { deit: DEIT, deit3: DEIT3 };

/** A named recipe with overrides applied and validated; errors name the field. */
export function resolveRecipe(name: string, overrides: RecipeOverrides = {}): Recipe {
  const base = RECIPES[name];
  if (!base)
    throw new Error(`recipe: unknown recipe "${name}"; use one of ${Object.keys(RECIPES).join(", ")}`);
  const merged = {
    ...base,
    ...overrides,
    dropPath: { ...base.dropPath, ...overrides.dropPath },
    clipGradNorm: { ...base.clipGradNorm, ...overrides.clipGradNorm },
    steps: { ...base.steps, ...overrides.steps },
  };
  const parsed = recipeSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`recipe.${issue.path.join(".")}: ${issue.message}`);
  }
  return parsed.data;
}

export interface PhaseSettings {
  phase: Phase;
  steps: number;
  batchSize: number;
  optimizer: OptimizerConfig;
  peakLr: number;
  minLr: number;
  warmupSteps: number;
  dropPath: number;
  clipGradNorm?: number;
  labelSmoothing: number;
  mix?: { mixupAlpha: number; cutmixAlpha: number; labelSmoothing: number };
  augment: AugmentConfig;
  loss: "ce" | "bce";
  recomputeActivations: boolean;
}

export function phaseSettings(recipe: Recipe, phase: Phase): PhaseSettings {
  const steps = recipe.steps[phase];
  const optimizer: OptimizerConfig =
    recipe.optimizer === "sgd"
      ? { kind: "sgd", momentum: 0.9, weightDecay: recipe.weightDecay }
      : { kind: recipe.optimizer, weightDecay: recipe.weightDecay };
  // BCE trains on (smoothed) soft targets, so it takes the mixing path even with Mixup/CutMix off.
  const mixing = recipe.mixup > 0 || recipe.cutmix > 0 || recipe.loss === "bce";
  const clip = recipe.clipGradNorm[phase];
  return {
    phase,
    steps,
    batchSize: recipe.batchSize,
    optimizer,
    peakLr: (recipe.baseLr * recipe.batchSize) / 512,
    minLr: recipe.minLr,
    warmupSteps: phase === "finetune" ? 0 : Math.round(recipe.warmupFraction * steps),
    dropPath: recipe.dropPath[phase],
    ...(clip > 0 ? { clipGradNorm: clip } : {}),
    labelSmoothing: recipe.labelSmoothing,
    ...(mixing
      ? {
          mix: {
            mixupAlpha: recipe.mixup,
            cutmixAlpha: recipe.cutmix,
            labelSmoothing: recipe.labelSmoothing,
          },
        }
      : {}),
    augment: recipe.augment,
    loss: recipe.loss,
    // A job spec stored before the field existed is read back as stored (no defaults): off.
    recomputeActivations: recipe.recomputeActivations === true,
  };
}

/** Learning rate before optimizer step `step` (0-based): linear warmup, then cosine to minLr. */
export function learningRate(
  s: Pick<PhaseSettings, "peakLr" | "minLr" | "warmupSteps" | "steps">,
  step: number,
): number {
  if (step < s.warmupSteps) return (s.peakLr * (step + 1)) / s.warmupSteps;
  const decaySteps = Math.max(1, s.steps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / decaySteps);
  return s.minLr + 0.5 * (s.peakLr - s.minLr) * (1 + Math.cos(Math.PI * progress));
}
