/** Module's fields: its run and jobs, progress from the event log, data stats; lineage is module-lineage.ts. */
import type { ModuleResolvers } from "../../generated/graphql.ts";
import { toGlobalId } from "../global-id.ts";
import { dataStatsOf } from "./job.ts";
import { required } from "./relations.ts";

export const moduleFields: ModuleResolvers = {
  id: (m) => toGlobalId("Module", m.id),
  run: async (m, _, ctx) => required(await ctx.loaders.run.load(m.runId), "run"),
  jobs: (m, _, ctx) => ctx.loaders.jobsByModule.load(m.id),
  attempts: async (m, _, ctx) =>
    (await ctx.loaders.jobsByModule.load(m.id)).reduce((sum, j) => sum + j.attempts, 0),
  progress: async (m, _, ctx) => {
    const event = await ctx.loaders.latestProgress.load(`${m.runId}:${m.index}`);
    if (!event) return null;
    const { step, totalSteps, loss, lr, imagesPerSecond, etaSeconds } = event;
    return { step, totalSteps, loss, lr, imagesPerSecond, etaSeconds, seq: event.seq, at: event.createdAt };
  },
  lineage: (m) => m,
  dataStats: async (m, _, ctx) =>
    (await ctx.loaders.jobsByModule.load(m.id)).map(dataStatsOf).findLast((d) => d !== null) ?? null,
};
