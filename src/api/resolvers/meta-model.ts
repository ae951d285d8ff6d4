/** MetaModel's fields: its dataset, source run and checkpoint, its origin, compatibility (its config fields are columns). */
import type { MetaModelResolvers } from "../../generated/graphql.ts";
import { metaIncompatibility } from "../../incubation/hybrid.ts";
import { targetConfig } from "../../platform/dispatch/plan.ts";
import { metaModelConfig, metaModelSource } from "../../platform/meta-model-source.ts";
import { projectOfRow } from "../auth/target-project.ts";
import { fromGlobalId, toGlobalId } from "../global-id.ts";
import { badArgument } from "../pagination.ts";

export const metaModelFields: MetaModelResolvers = {
  id: (m) => toGlobalId("MetaModel", m.id),
  project: projectOfRow,
  dataset: (m, _, ctx) => (m.datasetId ? ctx.loaders.dataset.load(m.datasetId) : null),
  sourceRun: (m, _, ctx) => (m.sourceRunId ? ctx.loaders.run.load(m.sourceRunId) : null),
  checkpoint: (m, _, ctx) => (m.checkpointId ? ctx.loaders.artifact.load(m.checkpointId) : null),
  compatibleWith: async (m, args, ctx) => {
    const arch = await ctx.loaders.architecture.load(
      fromGlobalId("Architecture", args.architectureId, "architectureId"),
    );
    if (!arch) throw badArgument("architectureId", `no architecture ${args.architectureId}`);
    const target = targetConfig(arch);
    const reasons = metaIncompatibility(target, metaModelConfig(m), arch.moduleSplit.length);
    return {
      compatible: reasons.length === 0,
      reasons,
      metaWidth: m.width,
      targetWidth: arch.width,
      needsAdapters: m.width !== arch.width,
    };
  },
  source: metaModelSource,
};
