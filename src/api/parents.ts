/**
 * What the resolvers of a GraphQL object type receive as their parent, where that is neither the
 * GraphQL shape itself nor a Prisma row (codegen.ts maps those to the Prisma client directly):
 * the parsed run events, the connection objects pagination.ts builds, a meta model's source.
 * codegen.ts maps every type named here (`mappers`), so the generated resolver types
 * (src/generated/graphql.ts) check resolvers against what they really get.
 */
import type * as Row from "../generated/prisma/client.ts";
import type { ApiTokenWithProjects } from "../platform/auth/api-tokens.ts";
import type { RunEvent, RunEventOf } from "../platform/events/run-event.ts";
import type { Connection } from "./pagination.ts";

export type { MetaModelSource } from "../platform/meta-model-source.ts";
export type { RunEvent };

/** ModuleLineage's parent is the Module itself. */
export type ModuleLineage = Row.Module;

export type ArchitectureConnection = Connection<Row.Architecture>;
export type DatasetConnection = Connection<Row.Dataset>;
export type MetaModelConnection = Connection<Row.MetaModel>;
export type RunConnection = Connection<Row.Run>;
export type RunEventConnection = Connection<RunEvent>;
export type WorkerTokenConnection = Connection<Row.WorkerToken>;
export type { ApiTokenWithProjects as ApiToken } from "../platform/auth/api-tokens.ts";
export type ApiTokenConnection = Connection<ApiTokenWithProjects>;

export type RunStateChanged = RunEventOf<"RUN_STATE">;
export type JobStateChanged = RunEventOf<"JOB_STATE">;
export type ModuleStateChanged = RunEventOf<"MODULE_STATE">;
export type JobStarted = RunEventOf<"JOB_STARTED">;
export type TrainingProgress = RunEventOf<"PROGRESS">;
export type EvaluationResult = RunEventOf<"METRIC">;
export type EvaluationPoint = RunEventOf<"EVAL_POINT">;
export type ArtifactProduced = RunEventOf<"ARTIFACT">;
export type LogMessage = RunEventOf<"LOG">;
