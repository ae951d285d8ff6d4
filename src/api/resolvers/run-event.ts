/**
 * The RunEvent interface and its concrete types. Events reach resolvers already parsed
 * (src/platform/events/run-event.ts), so each type's fields are plain properties; only the
 * links (a job) and the enum spellings of nested values need a resolver.
 */
import type {
  JobStartedResolvers,
  JobStateChangedResolvers,
  ResolversTypes,
  RunEventResolvers,
} from "../../generated/graphql.ts";
import type { RunEvent } from "../../platform/events/run-event.ts";
import { dataStatsOut } from "./data-stats.ts";

/** The GraphQL type of each event type. */
const TYPE_NAMES = {
  RUN_STATE: "RunStateChanged",
  JOB_STATE: "JobStateChanged",
  MODULE_STATE: "ModuleStateChanged",
  JOB_STARTED: "JobStarted",
  PROGRESS: "TrainingProgress",
  METRIC: "EvaluationResult",
  EVAL_POINT: "EvaluationPoint",
  ARTIFACT: "ArtifactProduced",
  LOG: "LogMessage",
} as const satisfies Record<RunEvent["type"], keyof ResolversTypes>;

export const runEventResolvers = {
  RunEvent: {
    __resolveType: (event) => TYPE_NAMES[event.type],
  },
  JobStateChanged: {
    job: (event, _, ctx) => ctx.loaders.job.load(event.jobId),
  },
  JobStarted: {
    dataStats: (event) => dataStatsOut(event.data),
  },
} satisfies {
  RunEvent: RunEventResolvers;
  JobStateChanged: JobStateChangedResolvers;
  JobStarted: JobStartedResolvers;
};
