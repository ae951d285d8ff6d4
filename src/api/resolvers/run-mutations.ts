/**
 * startRun, cancelRun, retryModule: validate, write the rows, then hand over to the scheduler
 * (`ctx.dispatcher`). Mistakes in the input come back as userErrors naming the field.
 */

import { GraphQLError } from "graphql";
import { augmentConfigSchema } from "../../data/augment/pipeline.ts";
import type { MutationResolvers, SplitPlanning } from "../../generated/graphql.ts";
import type { Architecture, Dataset, MetaModel, Prisma, RunKind } from "../../generated/prisma/client.ts";
import { metaIncompatibility } from "../../incubation/hybrid.ts";
import { moduleRanges } from "../../incubation/modules.ts";
import { PHASES, type Recipe, type RecipeOverrides, resolveRecipe } from "../../incubation/recipe.ts";
import { targetConfig } from "../../platform/dispatch/plan.ts";
import { ARCHITECTURE_LIMITS, RUN_LIMITS } from "../../platform/limits.ts";
import { metaModelConfig } from "../../platform/meta-model-source.ts";
import { labelProblem, normalizeLabels } from "../../platform/queue/placement.ts";
import { runSplit } from "../../platform/run-split.ts";
import { IllegalTransition } from "../../platform/state/machine.ts";
import { sameProject, targetProjectOf } from "../auth/target-project.ts";
import type { ApiContext } from "../context.ts";
import { errorMessage, type UserError, userError } from "../user-errors.ts";
import { lookup } from "./lookup.ts";
import { checkReuse } from "./run-reuse.ts";
import { checkSplitRequest, planRunSplit } from "./run-split-plan.ts";

interface StartRunInput {
  kind: RunKind;
  projectId?: string | null;
  architectureId: string;
  datasetId: string;
  metaModelId?: string | null;
  recipe: string;
  overrides?: unknown;
  decentralized: boolean;
  placement?: { moduleIndex?: number | null; labels: string[] }[] | null;
  priority: number;
  seed: number;
  reuseModulesFrom?: string | null;
  retrain?: number[] | null;
  split?: SplitPlanning | null;
}

const FINISHED_STATES: readonly string[] = ["SUCCEEDED", "FAILED", "CANCELLED"];
const RETRYABLE_MODULE_STATES: readonly string[] = ["FAILED", "CANCELLED"];

/**
 * The resolved recipe's numbers within RUN_LIMITS (the recipe's own schema says only "positive"),
 * and its augmentation config through the data layer's schema, with sizes bounded.
 */
function recipeBounds(recipe: Recipe, errors: UserError[]): void {
  const at = (...path: string[]) => ["input", "overrides", ...path];
  const max = (path: string[], value: number, limit: number) => {
    if (value > limit)
      errors.push(userError(at(...path), `recipe.${path.join(".")}: must be at most ${limit}, got ${value}`));
  };
  max(["batchSize"], recipe.batchSize, RUN_LIMITS.batchSize);
  for (const key of ["baseLr", "minLr", "weightDecay", "mixup", "cutmix"] as const)
    max([key], recipe[key], RUN_LIMITS[key]);
  for (const phase of PHASES) {
    max(["steps", phase], recipe.steps[phase], RUN_LIMITS.steps);
    max(["clipGradNorm", phase], recipe.clipGradNorm[phase], RUN_LIMITS.clipGradNorm);
  }
  const augment = augmentConfigSchema.safeParse(recipe.augment);
  if (!augment.success) {
    const issue = augment.error.issues[0]!;
    const path = issue.path.map(String);
    errors.push(userError(at("augment", ...path), `recipe.augment.${path.join(".")}: ${issue.message}`));
    return;
  }
  const size = augment.data.outputSize;
  for (const side of size === undefined ? [] : typeof size === "number" ? [size] : size)
    max(["augment", "outputSize"], side, ARCHITECTURE_LIMITS.imageSize);
  if (augment.data.crop.kind === "padded")
    max(["augment", "crop", "padding"], augment.data.crop.padding, 1024);
  max(["augment", "normalize", "mean"], augment.data.normalize.mean.length, ARCHITECTURE_LIMITS.channels);
  max(["augment", "normalize", "std"], augment.data.normalize.std.length, ARCHITECTURE_LIMITS.channels);
}

/** Numbers of the run itself within RUN_LIMITS. */
function runBounds(input: StartRunInput, errors: UserError[]): void {
  if (input.seed < 0 || input.seed > RUN_LIMITS.seed)
    errors.push(
      userError(["input", "seed"], `seed must be between 0 and ${RUN_LIMITS.seed}, got ${input.seed}`),
    );
  if (Math.abs(input.priority) > RUN_LIMITS.priority)
    errors.push(
      userError(
        ["input", "priority"],
        `priority must be between ${-RUN_LIMITS.priority} and ${RUN_LIMITS.priority}, got ${input.priority}`,
      ),
    );
  const placement = input.placement ?? [];
  if (placement.length > RUN_LIMITS.placementEntries)
    errors.push(
      userError(["input", "placement"], `placement may have at most ${RUN_LIMITS.placementEntries} entries`),
    );
  for (const [i, entry] of placement.entries()) {
    if (entry.labels.length > RUN_LIMITS.labelsPerEntry)
      errors.push(
        userError(
          ["input", "placement", String(i), "labels"],
          `at most ${RUN_LIMITS.labelsPerEntry} labels per entry`,
        ),
      );
  }
}

/** Recipe name and overrides through the incubation library's own validation. */
function checkRecipe(input: StartRunInput, errors: UserError[]): void {
  const overrides = input.overrides ?? {};
  if (typeof overrides !== "object" || overrides === null || Array.isArray(overrides)) {
    errors.push(
      userError(["input", "overrides"], 'overrides must be a JSON object such as {"batchSize": 64}'),
    );
    return;
  }
  try {
    recipeBounds(resolveRecipe(input.recipe, overrides as RecipeOverrides), errors);
  } catch (error) {
    const message = errorMessage(error);
    const path = /^recipe\.([^:]*):/.exec(message)?.[1];
    if (path === undefined) errors.push(userError(["input", "recipe"], message));
    else errors.push(userError(["input", "overrides", ...path.split(".").filter(Boolean)], message));
  }
}

/**
 * A meta model serves an architecture with the same heads, patch and image size and one block
 * per module; its width may differ (width adapters). The rules live in `metaIncompatibility`.
 */
function checkMetaModel(meta: MetaModel, arch: Architecture, errors: UserError[]): void {
  const target = targetConfig(arch);
  for (const reason of metaIncompatibility(target, metaModelConfig(meta), arch.moduleSplit.length)) {
    errors.push(
      userError(
        ["input", "metaModelId"],
        `meta model "${meta.name}", architecture "${arch.name}": ${reason}`,
        "INCOMPATIBLE",
      ),
    );
  }
}

/** Placement entries: module indexes that exist, well-formed labels. */
function checkPlacement(input: StartRunInput, numModules: number, errors: UserError[]): void {
  for (const [i, entry] of (input.placement ?? []).entries()) {
    const at = ["input", "placement", String(i)];
    if (entry.moduleIndex != null) {
      if (input.kind !== "INCUBATION") {
        errors.push(
          userError([...at, "moduleIndex"], `a ${input.kind} run has no modules; leave moduleIndex out`),
        );
      } else if (entry.moduleIndex < 0 || entry.moduleIndex >= numModules) {
        errors.push(
          userError(
            [...at, "moduleIndex"],
            `moduleIndex must be between 0 and ${numModules - 1} (the architecture has ${numModules} modules), got ${entry.moduleIndex}`,
          ),
        );
      }
    }
    if (entry.labels.length === 0)
      errors.push(userError([...at, "labels"], "give at least one label, e.g. site=a"));
    for (const [j, label] of entry.labels.entries()) {
      const problem = labelProblem(label);
      if (problem) errors.push(userError([...at, "labels", String(j)], problem));
    }
  }
}

function checkDataset(dataset: Dataset, arch: Architecture, errors: UserError[]): void {
  if (dataset.numClasses > arch.numClasses) {
    errors.push(
      userError(
        ["input", "datasetId"],
        `dataset "${dataset.name}" has ${dataset.numClasses} classes but architecture "${arch.name}" ` +
          `classifies ${arch.numClasses}`,
        "INCOMPATIBLE",
      ),
    );
  }
}

/** A decentralised run needs a training record per shard at least. */
function tooFewShards(dataset: Dataset, shards: number): UserError | null {
  if (dataset.trainSize >= shards) return null;
  return userError(
    ["input", "decentralized"],
    `dataset "${dataset.name}" has ${dataset.trainSize} training records, too few for ${shards} shards`,
  );
}

export const runMutationResolvers = {
  Mutation: {
    startRun: async (_: unknown, { input }: { input: StartRunInput }, ctx: ApiContext) => {
      // One list per lookup, joined in field order: the loads finish in any order, and clients
      // (and tests) read userErrors in the order of the input's fields.
      const found: [UserError[], UserError[], UserError[]] = [[], [], []];
      const [arch, dataset, meta] = await Promise.all([
        lookup(found[0], "architectureId", "Architecture", input.architectureId, (id) =>
          ctx.loaders.architecture.load(id),
        ),
        lookup(found[1], "datasetId", "Dataset", input.datasetId, (id) => ctx.loaders.dataset.load(id)),
        input.metaModelId != null
          ? lookup(found[2], "metaModelId", "MetaModel", input.metaModelId, (id) =>
              ctx.loaders.metaModel.load(id),
            )
          : null,
      ]);
      const errors: UserError[] = found.flat();
      const projectId = await targetProjectOf(ctx, input);
      if (typeof projectId !== "string") errors.push(projectId);
      else {
        // Everything a run reads is in its own project (auth/target-project.ts).
        if (arch) errors.push(...sameProject("architectureId", "architecture", arch, projectId));
        if (dataset) errors.push(...sameProject("datasetId", "dataset", dataset, projectId));
        if (meta) errors.push(...sameProject("metaModelId", "meta model", meta, projectId));
      }
      if (input.metaModelId != null && input.kind !== "INCUBATION") {
        errors.push(userError(["input", "metaModelId"], `a ${input.kind} run does not use a meta model`));
      }
      if (input.decentralized && input.kind !== "INCUBATION") {
        errors.push(
          userError(["input", "decentralized"], "only INCUBATION runs train modules on their own shards"),
        );
      }
      runBounds(input, errors);
      checkRecipe(input, errors);
      checkSplitRequest(input, meta, errors);
      if (arch && dataset) checkDataset(dataset, arch, errors);
      if (arch) checkPlacement(input, arch.moduleSplit.length, errors);
      if (arch && meta && input.kind === "INCUBATION") checkMetaModel(meta, arch, errors);
      if (arch && input.decentralized && dataset) {
        const shards = tooFewShards(dataset, arch.moduleSplit.length);
        if (shards) errors.push(shards);
      }
      const reuse = await checkReuse(
        ctx,
        input,
        arch,
        meta,
        typeof projectId === "string" ? projectId : null,
        errors,
      );
      if (errors.length > 0 || !arch || !dataset || typeof projectId !== "string")
        return { run: null, userErrors: errors };

      // Only a valid request is planned: the measurement takes seconds.
      const plan = await planRunSplit(input, arch, meta);
      const moduleSplit = plan?.split ?? reuse?.moduleSplit ?? [];
      const split = runSplit({ moduleSplit }, arch);
      // A planned K (or a reused source's) is known only now.
      const shards = input.decentralized ? tooFewShards(dataset, split.length) : null;
      if (shards) return { run: null, userErrors: [shards] };

      const modules =
        input.kind === "INCUBATION"
          ? moduleRanges(split).map((r) => {
              // A reused module is finished from the start: SUCCEEDED, pointing at the source's weights.
              const reused = reuse?.reused.get(r.index);
              return {
                index: r.index,
                blockStart: r.start,
                blockEnd: r.end,
                shard: input.decentralized ? r.index : null,
                ...(reused ? { ...reused, state: "SUCCEEDED" as const } : {}),
              };
            })
          : [];
      const run = await ctx.db.run.create({
        data: {
          projectId,
          kind: input.kind,
          architectureId: arch.id,
          datasetId: dataset.id,
          metaModelId: reuse?.metaModelId ?? meta?.id ?? null,
          reusedFromRunId: reuse?.sourceRunId ?? null,
          recipe: input.recipe,
          overrides: (input.overrides ?? {}) as Prisma.InputJsonValue,
          decentralized: input.decentralized,
          placement: (input.placement ?? []).map((p) => ({
            ...(p.moduleIndex != null ? { moduleIndex: p.moduleIndex } : {}),
            labels: normalizeLabels(p.labels),
          })),
          priority: input.priority,
          seed: input.seed,
          moduleSplit,
          ...(plan ? { splitPlan: plan as unknown as Prisma.InputJsonValue } : {}),
          modules: { create: modules },
        },
      });
      try {
        await ctx.dispatcher.runCreated(run.id);
      } catch (error) {
        ctx.logger.error({ err: error, runId: run.id }, "startRun: the scheduler refused the run");
        throw new GraphQLError("the run was created but could not be queued; try again later", {
          extensions: { code: "DISPATCH_FAILED", runId: run.id },
        });
      }
      return { run: await ctx.db.run.findUnique({ where: { id: run.id } }), userErrors: [] };
    },

    cancelRun: async (_: unknown, { input }: { input: { runId: string } }, ctx: ApiContext) => {
      const errors: UserError[] = [];
      const run = await lookup(errors, "runId", "Run", input.runId, (id) =>
        ctx.db.run.findUnique({ where: { id } }),
      );
      if (!run) return { run: null, userErrors: errors };
      if (FINISHED_STATES.includes(run.state)) {
        return {
          run,
          userErrors: [
            userError(["input", "runId"], `the run already finished (${run.state})`, "RUN_FINISHED"),
          ],
        };
      }
      try {
        await ctx.dispatcher.cancelRun(run.id);
      } catch (error) {
        // It finished between the check above and the cancellation.
        if (!(error instanceof IllegalTransition)) throw error;
        return { run, userErrors: [userError(["input", "runId"], error.message, "RUN_FINISHED")] };
      }
      return { run: await ctx.db.run.findUnique({ where: { id: run.id } }), userErrors: [] };
    },

    retryModule: async (_: unknown, { input }: { input: { moduleId: string } }, ctx: ApiContext) => {
      const errors: UserError[] = [];
      const module = await lookup(errors, "moduleId", "Module", input.moduleId, (id) =>
        ctx.db.module.findUnique({ where: { id } }),
      );
      if (!module) return { module: null, userErrors: errors };
      if (!RETRYABLE_MODULE_STATES.includes(module.state)) {
        return {
          module,
          userErrors: [
            userError(
              ["input", "moduleId"],
              `only FAILED or CANCELLED modules can be retried; module ${module.index} is ${module.state}`,
              "NOT_RETRYABLE",
            ),
          ],
        };
      }
      try {
        await ctx.dispatcher.retryModule(module.id);
      } catch (error) {
        // Its state changed meanwhile, or it never had a job to retry.
        if (!(error instanceof IllegalTransition)) throw error;
        return { module, userErrors: [userError(["input", "moduleId"], error.message, "NOT_RETRYABLE")] };
      }
      return { module: await ctx.db.module.findUnique({ where: { id: module.id } }), userErrors: [] };
    },
  },
} satisfies { Mutation: MutationResolvers };
