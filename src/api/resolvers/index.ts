/** All resolvers, merged by type. Each file owns one area of schema.graphql. */
import { GraphQLScalarType, Kind } from "graphql";
import { authResolvers } from "../auth/resolvers.ts";
import { architectureResolvers } from "./architectures.ts";
import { datasetResolvers } from "./datasets.ts";
import { healthResolvers } from "./health.ts";
import { metaModelResolvers } from "./meta-models.ts";
import { nodeResolvers } from "./node.ts";
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

export const resolvers = {
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
  Run: runResolvers.Run,
  Module: runResolvers.Module,
  ModuleLineage: runResolvers.ModuleLineage,
  Job: runResolvers.Job,
  Artifact: runResolvers.Artifact,
  ...runEventResolvers,
  MetaModel: { ...runResolvers.MetaModel, ...metaModelResolvers.MetaModel },
  MetaModelSource: metaModelResolvers.MetaModelSource,
  WorkerToken: workerTokenResolvers.WorkerToken,
  ApiToken: authResolvers.ApiToken,
  Project: authResolvers.Project,
};
