/**
 * The RunEvent interface and its concrete types. Events reach resolvers already parsed
 * (src/platform/events/run-event.ts), so each type's fields are plain properties; only the
 * links (a job) and the enum spellings of nested values need a resolver.
 */
import type { RunEvent, RunEventOf } from "../../platform/events/run-event.ts";
import type { ApiContext } from "../context.ts";
import { dataStatsOut } from "./data-stats.ts";

/** The GraphQL type of each event type. */
const TYPE_NAMES: Record<RunEvent["type"], string> = {
  RUN_STATE: "RunStateChanged",
  JOB_STATE: "JobStateChanged",
  MODULE_STATE: "ModuleStateChanged",
  JOB_STARTED: "JobStarted",
  PROGRESS: "TrainingProgress",
  METRIC: "EvaluationResult",
  ARTIFACT: "ArtifactProduced",
  LOG: "LogMessage",
};

export const runEventResolvers = {
  RunEvent: {
    __resolveType: (event: RunEvent) => TYPE_NAMES[event.type],
  },
  JobStateChanged: {
    job: (event: RunEventOf<"JOB_STATE">, _: unknown, ctx: ApiContext) => ctx.loaders.job.load(event.jobId),
  },
  JobStarted: {
    dataStats: (event: RunEventOf<"JOB_STARTED">) => dataStatsOut(event.data),
  },
};
