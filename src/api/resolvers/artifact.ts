/** Artifact's fields: size, download URL, the run/job/module that made it, the modules it was assembled from. */

import type { ArtifactResolvers } from "../../generated/graphql.ts";
import { ArtifactKind } from "../../generated/prisma/enums.ts";
import { toGlobalId } from "../global-id.ts";

/** Kinds of artifact made from a run's modules (lineage: `assembledFrom`). */
const ASSEMBLED_KINDS: readonly ArtifactKind[] = [
  ArtifactKind.ASSEMBLED_MODEL,
  ArtifactKind.FINAL_MODEL_ONNX,
  ArtifactKind.FINAL_WEIGHTS,
];

export const artifactFields: ArtifactResolvers = {
  id: (a) => toGlobalId("Artifact", a.id),
  sizeBytes: (a) => Number(a.sizeBytes),
  downloadUrl: (a) => `/artifacts/${a.sha256}`,
  run: (a, _, ctx) => (a.runId ? ctx.loaders.run.load(a.runId) : null),
  job: (a, _, ctx) => (a.jobId ? ctx.loaders.job.load(a.jobId) : null),
  module: async (a, _, ctx) => {
    const job = a.jobId ? await ctx.loaders.job.load(a.jobId) : null;
    return job?.moduleId ? ctx.loaders.module.load(job.moduleId) : null;
  },
  assembledFrom: async (a, _, ctx) => {
    if (!a.runId || !ASSEMBLED_KINDS.includes(a.kind)) return null;
    const run = await ctx.loaders.run.load(a.runId);
    if (run?.kind !== "INCUBATION") return null;
    return ctx.loaders.modulesByRun.load(run.id);
  },
};
