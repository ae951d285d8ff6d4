/** Target architectures: createArchitecture, the Architecture type, and its queries. */

import {
  countParams,
  VIT_DEFAULTS,
  type VitConfig,
  validateVitConfig,
  vitParamSpecs,
  vitPreset,
} from "../../engine/models/vit.ts";
import type { ArchitectureResolvers, MutationResolvers, QueryResolvers } from "../../generated/graphql.ts";
import type { Architecture } from "../../generated/prisma/client.ts";
import { moduleRanges, resolveSplit } from "../../incubation/modules.ts";
import type { ApiContext } from "../context.ts";
import { fromGlobalId, toGlobalId } from "../global-id.ts";
import { type PageArgs, paginate } from "../pagination.ts";
import {
  errorMessage,
  fieldOfMessage,
  isUniqueViolation,
  type UserError,
  userError,
} from "../user-errors.ts";
import { runsConnection } from "./runs.ts";

const VIT_FIELDS = [
  "imageSize",
  "channels",
  "patchSize",
  "width",
  "depth",
  "heads",
  "mlpRatio",
  "numClasses",
] as const;
type VitField = (typeof VIT_FIELDS)[number];

interface CreateArchitectureInput extends Partial<Record<VitField, number | null>> {
  name: string;
  preset?: string | null;
  moduleSplit?: number[] | null;
  modules?: number | null;
}

/** The engine's config for a stored architecture. */
export function vitConfigOf(a: Architecture): VitConfig {
  return {
    ...VIT_DEFAULTS,
    imageSize: a.imageSize,
    channels: a.channels,
    patchSize: a.patchSize,
    width: a.width,
    depth: a.depth,
    heads: a.heads,
    mlpRatio: a.mlpRatio,
    numClasses: a.numClasses,
  };
}

/** Checks an architecture input with the engine's own validators; errors name the input field. */
export function checkArchitectureInput(input: CreateArchitectureInput): {
  errors: UserError[];
  config?: VitConfig;
  split?: number[];
} {
  const errors: UserError[] = [];
  if (input.name.trim() === "")
    errors.push(userError(["input", "name"], "name must not be empty", "REQUIRED"));
  let base: Partial<VitConfig> = {};
  let presetFailed = false;
  if (input.preset != null) {
    try {
      base = vitPreset(input.preset);
    } catch (error) {
      presetFailed = true;
      errors.push(userError(["input", "preset"], errorMessage(error)));
    }
  }
  const values: Partial<Record<VitField, number>> = {};
  for (const key of VIT_FIELDS) {
    const value = input[key] ?? base[key];
    if (value != null) values[key] = value;
    else if (!presetFailed) {
      errors.push(userError(["input", key], `${key} is required (or give a preset)`, "REQUIRED"));
    }
  }
  let config: VitConfig | undefined;
  if (VIT_FIELDS.every((key) => values[key] !== undefined)) {
    try {
      config = validateVitConfig({ ...VIT_DEFAULTS, ...base, ...(values as Record<VitField, number>) });
    } catch (error) {
      const message = errorMessage(error);
      errors.push(userError(fieldOfMessage(message, VIT_FIELDS, ["input"]) ?? ["input"], message));
    }
  }
  let split: number[] | undefined;
  if (input.moduleSplit != null && input.modules != null) {
    errors.push(userError(["input", "modules"], "give moduleSplit or modules, not both"));
  } else if (values.depth !== undefined && Number.isInteger(values.depth) && values.depth > 0) {
    try {
      split = resolveSplit(values.depth, input.moduleSplit ?? input.modules ?? 4);
    } catch (error) {
      const message = errorMessage(error);
      const field = fieldOfMessage(message, ["moduleSplit", "modules"], ["input"]);
      errors.push(
        userError(field ?? ["input", input.moduleSplit != null ? "moduleSplit" : "modules"], message),
      );
    }
  }
  return errors.length > 0 || !config || !split ? { errors } : { errors, config, split };
}

export const architectureResolvers = {
  Query: {
    architectures: (_: unknown, args: PageArgs, ctx: ApiContext) =>
      paginate(args, {
        order: "asc",
        find: ({ keyset, orderBy, take }) =>
          ctx.db.architecture.findMany({ where: { AND: keyset }, orderBy, take }),
        count: () => ctx.db.architecture.count(),
      }),
    architecture: (_: unknown, args: { id: string }, ctx: ApiContext) =>
      ctx.loaders.architecture.load(fromGlobalId("Architecture", args.id, "id")),
  },
  Mutation: {
    createArchitecture: async (
      _: unknown,
      { input }: { input: CreateArchitectureInput },
      ctx: ApiContext,
    ) => {
      const { errors, config, split } = checkArchitectureInput(input);
      if (!config || !split) return { architecture: null, userErrors: errors };
      const name = input.name.trim();
      const taken = () =>
        userError(["input", "name"], `an architecture named "${name}" already exists`, "TAKEN");
      if (await ctx.db.architecture.findUnique({ where: { name }, select: { id: true } })) {
        return { architecture: null, userErrors: [taken()] };
      }
      try {
        const architecture = await ctx.db.architecture.create({
          data: {
            name,
            imageSize: config.imageSize,
            channels: config.channels,
            patchSize: config.patchSize,
            width: config.width,
            depth: config.depth,
            heads: config.heads,
            mlpRatio: config.mlpRatio,
            numClasses: config.numClasses,
            moduleSplit: split,
          },
        });
        return { architecture, userErrors: [] };
      } catch (error) {
        if (isUniqueViolation(error)) return { architecture: null, userErrors: [taken()] };
        throw error;
      }
    },
  },
  Architecture: {
    id: (a: Architecture) => toGlobalId("Architecture", a.id),
    numModules: (a: Architecture) => a.moduleSplit.length,
    modules: (a: Architecture) =>
      moduleRanges(a.moduleSplit).map((r) => ({
        index: r.index,
        blockStart: r.start,
        blockEnd: r.end,
        blocks: r.end - r.start,
      })),
    parameterCount: (a: Architecture) => countParams(vitParamSpecs(vitConfigOf(a))),
    runs: (a: Architecture, args: PageArgs & { state?: string | null }, ctx: ApiContext) =>
      runsConnection(ctx, args, { architectureId: a.id }),
  },
} satisfies { Query: QueryResolvers; Mutation: MutationResolvers; Architecture: ArchitectureResolvers };
