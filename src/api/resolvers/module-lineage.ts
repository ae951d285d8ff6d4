/** ModuleLineage's fields. The parent is the Module itself (Module.lineage returns it). */

import type { ModuleLineageResolvers } from "../../generated/graphql.ts";
import type { MetaModel, Run } from "../../generated/prisma/client.ts";
import { ArtifactKind } from "../../generated/prisma/enums.ts";
import { widthAdapters } from "../../incubation/hybrid.ts";
import { metaConfigFor } from "../../incubation/modules.ts";
import { parseStoredJobSpec } from "../../platform/dispatch/stored-spec.ts";
import type { ApiContext } from "../context.ts";
import { lastOfKind, required } from "./relations.ts";

/** The meta model that incubated a run's modules: the one given, else the one it pre-trained. */
async function metaModelOfRun(run: Run, ctx: ApiContext): Promise<MetaModel | null> {
  if (run.metaModelId) return ctx.loaders.metaModel.load(run.metaModelId);
  return ctx.loaders.metaModelBySourceRun.load(run.id);
}

export const moduleLineageFields: ModuleLineageResolvers = {
  module: (m) => m,
  run: async (m, _, ctx) => required(await ctx.loaders.run.load(m.runId), "run"),
  shard: (m) => m.shard,
  /** From the module's newest job spec: what the job trains with is what the spec says. */
  adapters: async (m, _, ctx) => {
    const job = (await ctx.loaders.jobsByModule.load(m.id)).at(-1);
    if (!job) return [];
    const spec = parseStoredJobSpec(job.spec, job.id);
    const meta = spec.meta ?? metaConfigFor(spec.target, spec.split.length);
    return widthAdapters(spec.target, meta, spec.split.length, m.index);
  },
  metaModel: async (m, _, ctx) => {
    const run = await ctx.loaders.run.load(m.runId);
    return run ? metaModelOfRun(run, ctx) : null;
  },
  checkpoints: async (m, _, ctx) => {
    const jobs = await ctx.loaders.jobsByModule.load(m.id);
    const perJob = await ctx.loaders.artifactsByJob.loadMany(jobs.map((j) => j.id));
    return perJob
      .flatMap((artifacts) => {
        if (artifacts instanceof Error) throw artifacts;
        return artifacts.filter((a) => a.kind === ArtifactKind.CHECKPOINT);
      })
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
  },
  assembledInto: async (m, _, ctx) =>
    lastOfKind(await ctx.loaders.artifactsByRun.load(m.runId), ArtifactKind.ASSEMBLED_MODEL),
};
