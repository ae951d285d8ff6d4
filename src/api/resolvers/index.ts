/**
 * All resolvers, merged by type: the one place that assembles the map schema.ts attaches. Files
 * by area hold Query/Mutation/Subscription fields (runs.ts, run-mutations.ts, …); a type's field
 * resolvers live in the file named for it (run.ts, module.ts, job.ts, …). Typed with the
 * resolver types generated from schema.graphql (codegen.ts).
 */
import { GraphQLScalarType, Kind } from "graphql";
import type { Resolvers } from "../../generated/graphql.ts";
import { authResolvers } from "../auth/resolvers.ts";
import { architectureResolvers } from "./architectures.ts";
import { artifactFields } from "./artifact.ts";
import { datasetResolvers } from "./datasets.ts";
import { healthResolvers } from "./health.ts";
import { jobFields } from "./job.ts";
import { metaModelFields } from "./meta-model.ts";
import { metaModelSourceFields } from "./meta-model-source.ts";
import { metaModelResolvers } from "./meta-models.ts";
import { moduleFields } from "./module.ts";
import { moduleLineageFields } from "./module-lineage.ts";
import { nodeResolvers } from "./node.ts";
import { runFields } from "./run.ts";
import { runEventResolvers } from "./run-event.ts";
import { runEventsResolvers } from "./run-events.ts";
import { runMutationResolvers } from "./run-mutations.ts";
import { runResolvers } from "./runs.ts";
import { serverTimeResolvers } from "./server-time.ts";
import { workerJobResolvers } from "./worker-jobs.ts";
import { workerTokenResolvers } from "./worker-tokens.ts";

const JSONScalar = new GraphQLScalarType({
  name: "JSON",
  serialize: (value) => value,
  parseValue: (value) => value,
});

const DateTime = new GraphQLScalarType({
  name: "DateTime",
  serialize: (value) => (value instanceof Date ? value.toISOString() : String(value)),
  parseValue: (value) => new Date(String(value)),
  parseLiteral: (ast) => (ast.kind === Kind.STRING ? new Date(ast.value) : null),
});

export const resolvers: Resolvers = {
  DateTime,
  JSON: JSONScalar,
  Node: nodeResolvers.Node,
  Query: {
    ...healthResolvers.Query,
    ...nodeResolvers.Query,
    ...architectureResolvers.Query,
    ...datasetResolvers.Query,
    ...runResolvers.Query,
    ...workerTokenResolvers.Query,
    ...authResolvers.Query,
  },
  Mutation: {
    ...architectureResolvers.Mutation,
    ...datasetResolvers.Mutation,
    ...runMutationResolvers.Mutation,
    ...metaModelResolvers.Mutation,
    ...workerTokenResolvers.Mutation,
    ...workerJobResolvers.Mutation,
    ...authResolvers.Mutation,
  },
  Subscription: {
    ...serverTimeResolvers.Subscription,
    ...runEventsResolvers.Subscription,
  },
  Architecture: architectureResolvers.Architecture,
  Dataset: datasetResolvers.Dataset,
  Run: runFields,
  Module: moduleFields,
  ModuleLineage: moduleLineageFields,
  Job: jobFields,
  Artifact: artifactFields,
  ...runEventResolvers,
  MetaModel: metaModelFields,
  MetaModelSource: metaModelSourceFields,
  WorkerToken: workerTokenResolvers.WorkerToken,
  ApiToken: authResolvers.ApiToken,
  Project: authResolvers.Project,
};
