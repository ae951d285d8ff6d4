/** MetaModel's fields: its dataset, source run and checkpoint, its origin and config, compatibility. */
import type { VitConfig } from "../../engine/models/vit.ts";
import type { MetaModelResolvers } from "../../generated/graphql.ts";
import type { MetaModel } from "../../generated/prisma/client.ts";
import { metaIncompatibility } from "../../incubation/hybrid.ts";
import { metaModelConfig, targetConfig } from "../../platform/dispatch/plan.ts";
import type { MetaModelSource } from "../../platform/meta-model-source.ts";
import { fromGlobalId, toGlobalId } from "../global-id.ts";
import { badArgument } from "../pagination.ts";

/** Rows written before `source` existed: a pre-training run is still known from sourceRunId. */
function sourceOf(m: MetaModel): MetaModelSource | null {
  if (m.source) return m.source as unknown as MetaModelSource;
  return m.sourceRunId ? { kind: "pretrain-run", runId: m.sourceRunId } : null;
}

/** A config field of the row (null for rows written before `config` existed). */
const configField =
  <K extends keyof VitConfig>(key: K) =>
  (m: MetaModel): VitConfig[K] | null =>
    (m.config as unknown as VitConfig | null)?.[key] ?? null;

export const metaModelFields: MetaModelResolvers = {
  id: (m) => toGlobalId("MetaModel", m.id),
  dataset: (m, _, ctx) => (m.datasetId ? ctx.loaders.dataset.load(m.datasetId) : null),
  sourceRun: (m, _, ctx) => (m.sourceRunId ? ctx.loaders.run.load(m.sourceRunId) : null),
  checkpoint: (m, _, ctx) => (m.checkpointId ? ctx.loaders.artifact.load(m.checkpointId) : null),
  compatibleWith: async (m, args, ctx) => {
    const arch = await ctx.loaders.architecture.load(
      fromGlobalId("Architecture", args.architectureId, "architectureId"),
    );
    if (!arch) throw badArgument("architectureId", `no architecture ${args.architectureId}`);
    const target = targetConfig(arch);
    const reasons = metaIncompatibility(target, metaModelConfig(m, target), arch.moduleSplit.length);
    return {
      compatible: reasons.length === 0,
      reasons,
      metaWidth: m.width,
      targetWidth: arch.width,
      needsAdapters: m.width !== arch.width,
    };
  },
  source: sourceOf,
  channels: configField("channels"),
  numClasses: configField("numClasses"),
  mlpRatio: configField("mlpRatio"),
  qkvBias: configField("qkvBias"),
};
