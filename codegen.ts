/**
 * GraphQL Code Generator: resolver types from schema.graphql into src/generated/graphql.ts
 * (git-ignored; written on install by scripts/graphql-codegen.mjs, or `npm run codegen`).
 * The dashboard (ui/) gets the schema's enums as types in ui/src/generated/schema.ts.
 * Resolver maps are typed with them, so a field, argument or return shape that schema.graphql
 * does not have fails `npm run typecheck`; test/api/codegen.test.ts fails when the file is stale.
 */
import type { CodegenConfig } from "@graphql-codegen/cli";

/** Object types whose resolvers get a Prisma row of the same name. */
const ROWS = [
  "Architecture",
  "Artifact",
  "Dataset",
  "Job",
  "MetaModel",
  "Module",
  "Project",
  "Run",
  "WorkerToken",
];

/** Other object types whose resolvers get something else than the GraphQL shape (src/api/parents.ts). */
const PARENTS = [
  "ApiToken",
  "ApiTokenConnection",
  "ArchitectureConnection",
  "ArtifactProduced",
  "DatasetConnection",
  "EvaluationPoint",
  "EvaluationResult",
  "JobStarted",
  "JobStateChanged",
  "LogMessage",
  "MetaModelConnection",
  "MetaModelSource",
  "ModuleLineage",
  "ModuleStateChanged",
  "RunConnection",
  "RunEvent",
  "RunEventConnection",
  "RunStateChanged",
  "TrainingProgress",
  "WorkerTokenConnection",
];

export const GENERATED_PATH = "src/generated/graphql.ts";
/** The dashboard's copy of the schema's enums (closed sets: RunState, StageKind, …), types only. */
export const UI_GENERATED_PATH = "ui/src/generated/schema.ts";

const config: CodegenConfig = {
  schema: "schema.graphql",
  silent: true,
  generates: {
    [GENERATED_PATH]: {
      plugins: ["typescript", "typescript-resolvers"],
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        // graphql-js fills in an omitted input field's default before resolvers see it
        avoidOptionals: { defaultValue: true },
        contextType: "../api/context.ts#ApiContext",
        mapperTypeSuffix: "Parent",
        // paths are relative to the generated file
        mappers: Object.fromEntries([
          ...ROWS.map((name) => [name, `./prisma/client.ts#${name}`]),
          ...PARENTS.map((name) => [name, `../api/parents.ts#${name}`]),
        ]),
        scalars: { DateTime: { input: "Date", output: "Date | string" }, JSON: "unknown" },
      },
    },
    [UI_GENERATED_PATH]: {
      plugins: ["typescript"],
      config: { onlyEnums: true, enumsAsTypes: true, useTypeImports: true },
    },
  },
};

export default config;
