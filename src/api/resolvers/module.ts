/** Module's fields: its run and jobs, progress from the event log, data stats; lineage is module-lineage.ts. */
import type { ModuleResolvers } from "../../generated/graphql.ts";
import { ArtifactKind, JobState } from "../../generated/prisma/enums.ts";
import { toGlobalId } from "../global-id.ts";
import { dataStatsOf } from "./job.ts";
import { lastOfKind, required } from "./relations.ts";

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
  reusedFrom: (m, _, ctx) => (m.reusedFromId ? ctx.loaders.module.load(m.reusedFromId) : null),
  weights: async (m, _, ctx) => {
    if (m.reusedWeightsId) return ctx.loaders.artifact.load(m.reusedWeightsId);
    const job = (await ctx.loaders.jobsByModule.load(m.id)).findLast((j) => j.state === JobState.SUCCEEDED);
    if (!job) return null;
    return lastOfKind(await ctx.loaders.artifactsByJob.load(job.id), ArtifactKind.WEIGHTS);
  },
  dataStats: async (m, _, ctx) =>
    (await ctx.loaders.jobsByModule.load(m.id)).map(dataStatsOf).findLast((d) => d !== null) ?? null,
};
