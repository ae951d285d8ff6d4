/** Datasets: registerDataset (validate the spec, open it, count), the Dataset type, its queries. */

import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { GraphQLError } from "graphql";
import { DataError } from "../../data/errors.ts";
import {
  datasetSpecSchema,
  openDataset,
  type ParsedDatasetSpec,
  readDatasetLabels,
  selectRecords,
} from "../../data/registry.ts";
import { balancedShards, classCounts } from "../../data/splits.ts";
import type { DatasetResolvers, MutationResolvers, QueryResolvers } from "../../generated/graphql.ts";
import type { Dataset, Prisma } from "../../generated/prisma/client.ts";
import { datasetSpecOf, readDatasetOptions } from "../../platform/db/json-columns.ts";
import { DATASET_LIMITS, INPUT_LIMITS } from "../../platform/limits.ts";
import { serverPath, withServerPaths } from "../auth/server-paths.ts";
import { projectOfRow, targetProjectOf } from "../auth/target-project.ts";
import type { ApiContext } from "../context.ts";
import { checkDataPaths, fileProblem } from "../data-roots.ts";
import { fromGlobalId, toGlobalId } from "../global-id.ts";
import { badArgument, type PageArgs, paginate } from "../pagination.ts";
import { isUniqueViolation, type UserError, userError } from "../user-errors.ts";
import { runsConnection } from "./runs.ts";

const MAX_SHARDS = DATASET_LIMITS.shards;

/** Numbers and lists in a parsed spec beyond what the API accepts (platform/limits.ts). */
function specBounds(spec: ParsedDatasetSpec): UserError[] {
  const errors: UserError[] = [];
  const over = (key: string, value: number | undefined, max: number) => {
    if (value !== undefined && value > max) {
      errors.push(userError(["input", "spec", key], `spec.${key}: must be at most ${max}, got ${value}`));
    }
  };
  if (spec.format === "synthetic") over("length", spec.length, DATASET_LIMITS.syntheticLength);
  if (spec.format === "idx") {
    over("numClasses", spec.numClasses, DATASET_LIMITS.numClasses);
    over("classNames", spec.classNames?.length, DATASET_LIMITS.classNames);
  }
  if (spec.format === "image-folder") over("classes", spec.classes?.length, DATASET_LIMITS.classNames);
  return errors;
}

/** The server-side paths a spec names, each with its field. */
function specPaths(spec: ParsedDatasetSpec) {
  const named: { field: string[]; name: string; path: unknown }[] = [];
  for (const key of ["path", "images", "labels"] as const) {
    const path = (spec as Partial<Record<typeof key, string>>)[key];
    if (path !== undefined) named.push({ field: ["input", "spec", key], name: `spec.${key}`, path });
  }
  return named;
}

/** Which spec field a data-layer error is about, from the file or directory it names. */
function specFieldOf(error: DataError, spec: ParsedDatasetSpec): string[] {
  const prefix = ["input", "spec"];
  if (spec.format === "idx") {
    if (spec.images && error.source === spec.images) return [...prefix, "images"];
    if (spec.labels && error.source === spec.labels) return [...prefix, "labels"];
  }
  if ("path" in spec && spec.path) return [...prefix, "path"];
  if (spec.format === "idx") return [...prefix, spec.images ? "images" : "labels"];
  return prefix;
}

/**
 * Whether the dataset has its own test split (opening the test side would otherwise fail for a
 * missing file, or silently reuse the train files).
 */
function hasTestSplit(spec: ParsedDatasetSpec): boolean {
  const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();
  switch (spec.format) {
    case "synthetic":
      return true;
    case "cifar10":
      return existsSync(join(spec.path, "test_batch.bin"));
    case "cifar100":
      return existsSync(join(spec.path, "test.bin"));
    case "image-folder":
      return isDir(join(spec.path, "test")) || isDir(join(spec.path, "val"));
    case "idx": {
      if (!spec.path) return false; // explicit image and label files: one split only
      const dir = spec.path;
      return ["labels-idx1", "images-idx3"].some((kind) =>
        [`t10k-${kind}-ubyte.gz`, `t10k-${kind}-ubyte`, `t10k-${kind}.ubyte`].some((n) =>
          existsSync(join(dir, n)),
        ),
      );
    }
  }
}

/** zod issues as user errors at ["input", "spec", …path]. */
function specIssues(
  issues: readonly { path: PropertyKey[]; message: string; code: string; keys?: string[] }[],
) {
  return issues.map((issue) => {
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys" && issue.keys?.length) path.push(issue.keys[0]!);
    const name = path.length > 0 ? `spec.${path.join(".")}` : "spec";
    return userError(["input", "spec", ...path], `${name}: ${issue.message}`);
  });
}

/** Train-split labels per dataset, kept for a few datasets: registered datasets do not change. */
const labelCache = new Map<string, Promise<Int32Array>>();
const LABEL_CACHE_SIZE = 8;

export function trainLabels(dataset: Dataset): Promise<Int32Array> {
  const key = `${dataset.id}@${dataset.createdAt.getTime()}`;
  let labels = labelCache.get(key);
  if (!labels) {
    const spec = datasetSpecOf(dataset, { split: "train" });
    labels = (async () => {
      const all = await readDatasetLabels(spec);
      const selected = await selectRecords(spec); // a validation hold-out, when the spec has one
      return selected ? Int32Array.from(selected, (i) => all[i]!) : all;
    })();
    labels.catch(() => labelCache.delete(key));
    labelCache.set(key, labels);
    while (labelCache.size > LABEL_CACHE_SIZE) labelCache.delete(labelCache.keys().next().value!);
  }
  return labels;
}

async function readLabels(dataset: Dataset, ctx: ApiContext): Promise<Int32Array> {
  try {
    return await trainLabels(dataset);
  } catch (error) {
    if (error instanceof DataError) {
      ctx.logger.warn({ err: error, requestId: ctx.requestId, dataset: dataset.id }, "dataset unreadable");
      throw new GraphQLError(
        `dataset "${dataset.name}" cannot be read any more; the server's log has the details (request ${ctx.requestId})`,
        { extensions: { code: "DATASET_UNREADABLE", requestId: ctx.requestId } },
      );
    }
    throw error;
  }
}

export const datasetResolvers = {
  Query: {
    datasets: (_: unknown, args: PageArgs, ctx: ApiContext) =>
      paginate(args, {
        order: "asc",
        find: ({ keyset, orderBy, take }) =>
          ctx.db.dataset.findMany({ where: { AND: keyset }, orderBy, take }),
        count: () => ctx.db.dataset.count(),
      }),
    dataset: (_: unknown, args: { id: string }, ctx: ApiContext) =>
      ctx.loaders.dataset.load(fromGlobalId("Dataset", args.id, "id")),
  },
  Mutation: {
    registerDataset: async (
      _: unknown,
      { input }: { input: { name: string; spec: unknown; projectId?: string | null } },
      ctx: ApiContext,
    ) => {
      const fail = (userErrors: UserError[]) => ({ dataset: null, userErrors });
      const name = input.name.trim();
      const errors: UserError[] = [];
      if (name === "") errors.push(userError(["input", "name"], "name must not be empty", "REQUIRED"));
      if (name.length > INPUT_LIMITS.nameLength) {
        errors.push(
          userError(["input", "name"], `name must be at most ${INPUT_LIMITS.nameLength} characters`),
        );
      }
      if (typeof input.spec !== "object" || input.spec === null || Array.isArray(input.spec)) {
        errors.push(
          userError(["input", "spec"], 'spec must be a JSON object such as {"format": "synthetic"}'),
        );
        return fail(errors);
      }
      const parsed = datasetSpecSchema.safeParse(input.spec);
      if (!parsed.success) return fail([...errors, ...specIssues(parsed.error.issues)]);
      if (parsed.data.shard) {
        errors.push(
          userError(
            ["input", "spec", "shard"],
            "spec.shard: register the whole dataset; decentralised runs deal it into shards themselves",
          ),
        );
      }
      errors.push(...specBounds(parsed.data));
      const projectId = await targetProjectOf(ctx, input);
      if (typeof projectId !== "string") errors.push(projectId);
      if (errors.length > 0 || typeof projectId !== "string") return fail(errors);
      // Files only inside the data roots, checked before any byte is read.
      const outside = await checkDataPaths(specPaths(parsed.data), ctx.dataRoots);
      if (outside.length > 0) return fail(outside);
      const taken = () =>
        userError(["input", "name"], `a dataset named "${name}" already exists in this project`, "TAKEN");
      const where = { projectId_name: { projectId, name } };
      if (await ctx.db.dataset.findUnique({ where, select: { id: true } })) return fail([taken()]);

      const spec = parsed.data;
      // What is stored: the spec without `split` (jobs choose the split).
      const { split: _split, ...stored } = spec;
      let numClasses: number;
      let trainSize: number;
      let testSize = 0;
      try {
        const train = await openDataset({ ...stored, split: "train" });
        numClasses = train.numClasses;
        trainSize = train.length;
        if (hasTestSplit(spec)) testSize = (await openDataset({ ...stored, split: "test" })).length;
      } catch (error) {
        if (!(error instanceof DataError)) throw error;
        // Synthetic data has no files: its messages are about the spec's numbers.
        if (spec.format === "synthetic") return fail([userError(["input", "spec"], error.message)]);
        const expected = `${spec.format === "image-folder" ? "an" : "a"} ${spec.format} dataset`;
        return fail([fileProblem(ctx.logger, ctx.requestId, specFieldOf(error, spec), expected, error)]);
      }
      try {
        const dataset = await ctx.db.dataset.create({
          data: {
            projectId,
            name,
            format: spec.format,
            path:
              ("path" in spec ? spec.path : undefined) ??
              (spec.format === "idx" ? spec.images : undefined) ??
              null,
            options: stored as Prisma.InputJsonValue,
            numClasses,
            trainSize,
            testSize,
          },
        });
        return { dataset, userErrors: [] };
      } catch (error) {
        if (isUniqueViolation(error)) return fail([taken()]);
        throw error;
      }
    },
  },
  Dataset: {
    id: (d: Dataset) => toGlobalId("Dataset", d.id),
    project: projectOfRow,
    // Server paths are for admins; others see file and folder names (auth/server-paths.ts).
    path: (d: Dataset, _: unknown, ctx: ApiContext) => serverPath(d.path, ctx.principal),
    spec: (d: Dataset, _: unknown, ctx: ApiContext) => withServerPaths(readDatasetOptions(d), ctx.principal),
    classCounts: async (d: Dataset, _: unknown, ctx: ApiContext) => {
      const labels = await readLabels(d, ctx);
      return classCounts(labels, [Int32Array.from(labels.keys())], d.numClasses)[0]!;
    },
    shards: async (d: Dataset, args: { count: number; seed: number }, ctx: ApiContext) => {
      if (args.count < 1 || args.count > Math.min(MAX_SHARDS, d.trainSize)) {
        throw badArgument(
          "count",
          `must be between 1 and ${Math.min(MAX_SHARDS, d.trainSize)}, got ${args.count}`,
        );
      }
      if (args.seed < 0) throw badArgument("seed", `must be ≥ 0, got ${args.seed}`);
      const labels = await readLabels(d, ctx);
      const shards = balancedShards(labels, args.count, args.seed);
      const counts = classCounts(labels, shards, d.numClasses);
      return shards.map((shard, index) => ({ index, size: shard.length, classCounts: counts[index]! }));
    },
    runs: (d: Dataset, args: PageArgs & { state?: string | null }, ctx: ApiContext) =>
      runsConnection(ctx, args, { datasetId: d.id }),
  },
} satisfies { Query: QueryResolvers; Mutation: MutationResolvers; Dataset: DatasetResolvers };
