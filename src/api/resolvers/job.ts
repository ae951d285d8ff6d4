/** Job's fields: its run, module and artifacts, and the data stats its result records. */

import type { JobResolvers } from "../../generated/graphql.ts";
import type { Job } from "../../generated/prisma/client.ts";
import { storedJobResult } from "../../platform/db/run-columns.ts";
import { toGlobalId } from "../global-id.ts";
import { dataStatsOut } from "./data-stats.ts";
import { required } from "./relations.ts";

/** The job result's data stats (workers store the job's `JobResult`), with the enum spelling. */
export function dataStatsOf(job: Job) {
  const data = storedJobResult(job.result)?.data;
  return data ? dataStatsOut(data) : null;
}

export const jobFields: JobResolvers = {
  id: (j) => toGlobalId("Job", j.id),
  run: async (j, _, ctx) => required(await ctx.loaders.run.load(j.runId), "run"),
  module: (j, _, ctx) => (j.moduleId ? ctx.loaders.module.load(j.moduleId) : null),
  artifacts: (j, _, ctx) => ctx.loaders.artifactsByJob.load(j.id),
  dataStats: dataStatsOf,
};
