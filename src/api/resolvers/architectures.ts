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
import { ARCHITECTURE_LIMITS, DEFAULT_REQUEST_LIMITS, INPUT_LIMITS } from "../../platform/limits.ts";
import { projectOfRow, targetProjectOf } from "../auth/target-project.ts";
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
  projectId?: string | null;
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

/**
 * Sizes at most ARCHITECTURE_LIMITS, checked before anything is computed from them (a split of
 * two billion modules would be allocated otherwise). Lower bounds are the engine's (below).
 */
function sizeBounds(input: CreateArchitectureInput): UserError[] {
  const errors: UserError[] = [];
  const atMost = (field: string, value: number | null | undefined, max: number) => {
    if (value != null && value > max)
      errors.push(userError(["input", field], `${field} must be at most ${max}, got ${value}`));
  };
  for (const key of VIT_FIELDS) atMost(key, input[key], ARCHITECTURE_LIMITS[key]);
  atMost("modules", input.modules, ARCHITECTURE_LIMITS.modules);
  if (input.moduleSplit != null && input.moduleSplit.length > ARCHITECTURE_LIMITS.modules)
    errors.push(
      userError(
        ["input", "moduleSplit"],
        `moduleSplit may list at most ${ARCHITECTURE_LIMITS.modules} modules`,
      ),
    );
  for (const [i, n] of (input.moduleSplit ?? []).entries()) {
    if (n > ARCHITECTURE_LIMITS.depth)
      errors.push(
        userError(
          ["input", "moduleSplit", String(i)],
          `moduleSplit[${i}] must be at most ${ARCHITECTURE_LIMITS.depth} blocks, got ${n}`,
        ),
      );
  }
  return errors;
}

/** The whole model's size: patches per image and parameters. */
function modelBounds(config: VitConfig, maxParameters: number): UserError[] {
  const errors: UserError[] = [];
  const patches = (config.imageSize / config.patchSize) ** 2;
  if (patches > ARCHITECTURE_LIMITS.sequenceLength)
    errors.push(
      userError(
        ["input", "patchSize"],
        `(imageSize / patchSize)² = ${patches} patches per image; the limit is ${ARCHITECTURE_LIMITS.sequenceLength} (use a larger patchSize)`,
      ),
    );
  const parameters = countParams(vitParamSpecs(config));
  if (parameters > maxParameters)
    errors.push(
      userError(
        ["input"],
        `the model would have ${parameters} parameters; the limit is ${maxParameters} (MAX_PARAMETERS)`,
      ),
    );
  return errors;
}

/** Checks an architecture input with the engine's own validators; errors name the input field. */
export function checkArchitectureInput(
  input: CreateArchitectureInput,
  maxParameters: number = DEFAULT_REQUEST_LIMITS.maxParameters,
): {
  errors: UserError[];
  config?: VitConfig;
  split?: number[];
} {
  const bounds = sizeBounds(input);
  if (bounds.length > 0) return { errors: bounds };
  const errors: UserError[] = [];
  if (input.name.trim() === "")
    errors.push(userError(["input", "name"], "name must not be empty", "REQUIRED"));
  else if (input.name.trim().length > INPUT_LIMITS.nameLength)
    errors.push(userError(["input", "name"], `name must be at most ${INPUT_LIMITS.nameLength} characters`));
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
      const tooBig = modelBounds(config, maxParameters);
      if (tooBig.length > 0) {
        errors.push(...tooBig);
        config = undefined;
      }
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
      const { errors, config, split } = checkArchitectureInput(input, ctx.maxParameters);
      const projectId = await targetProjectOf(ctx, input);
      if (typeof projectId !== "string") errors.push(projectId);
      if (!config || !split || typeof projectId !== "string")
        return { architecture: null, userErrors: errors };
      const name = input.name.trim();
      const taken = () =>
        userError(
          ["input", "name"],
          `an architecture named "${name}" already exists in this project`,
          "TAKEN",
        );
      const where = { projectId_name: { projectId, name } };
      if (await ctx.db.architecture.findUnique({ where, select: { id: true } })) {
        return { architecture: null, userErrors: [taken()] };
      }
      try {
        const architecture = await ctx.db.architecture.create({
          data: {
            projectId,
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
    project: projectOfRow,
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
