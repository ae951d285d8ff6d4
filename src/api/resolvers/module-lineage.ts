/** ModuleLineage's fields. The parent is the Module itself (Module.lineage returns it). */

import type { ModuleLineageResolvers } from "../../generated/graphql.ts";
import type { MetaModel, Module, Run } from "../../generated/prisma/client.ts";
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

/**
 * The module whose jobs trained `m`'s weights: `m` itself, or, for a module reused from an
 * earlier run (perhaps itself a reuse run), the module at the end of that chain.
 */
async function trainedModule(m: Module, ctx: ApiContext): Promise<Module> {
  let current = m;
  while (current.reusedFromId) {
    const source = await ctx.loaders.module.load(current.reusedFromId);
    if (!source) break; // the source run is out of the caller's reach, or was deleted
    current = source;
  }
  return current;
}

export const moduleLineageFields: ModuleLineageResolvers = {
  module: (m) => m,
  run: async (m, _, ctx) => required(await ctx.loaders.run.load(m.runId), "run"),
  shard: (m) => m.shard,
  reusedFrom: (m, _, ctx) => (m.reusedFromId ? ctx.loaders.module.load(m.reusedFromId) : null),
  trainedIn: async (m, _, ctx) =>
    required(await ctx.loaders.run.load((await trainedModule(m, ctx)).runId), "run"),
  /** From the newest spec of the job that trained it: what the job trains with is what the spec says. */
  adapters: async (m, _, ctx) => {
    const trained = await trainedModule(m, ctx);
    const job = (await ctx.loaders.jobsByModule.load(trained.id)).at(-1);
    if (!job) return [];
    const spec = parseStoredJobSpec(job.spec, job.id);
    const meta = spec.meta ?? metaConfigFor(spec.target, spec.split.length);
    return widthAdapters(spec.target, meta, spec.split.length, trained.index);
  },
  metaModel: async (m, _, ctx) => {
    const run = await ctx.loaders.run.load(m.runId);
    return run ? metaModelOfRun(run, ctx) : null;
  },
  /** A reused module's are those of the run that trained it. */
  checkpoints: async (m, _, ctx) => {
    const jobs = await ctx.loaders.jobsByModule.load((await trainedModule(m, ctx)).id);
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
