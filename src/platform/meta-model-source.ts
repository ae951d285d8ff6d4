/**
 * A MetaModel row and what it stands for: its architecture (a VitConfig, one typed column per
 * field; see prisma/schema.prisma for why columns) and where it came from (`source`, read
 * through its zod schema in db/json-columns.ts) — pre-trained here by a META_PRETRAIN run,
 * registered as an existing K-block file, or imported from a pre-trained ViT
 * (src/incubation/pretrained.ts). Every writer and reader of those columns goes through here.
 */

import type { VitConfig } from "../engine/models/vit.ts";
import type { MetaModel } from "../generated/prisma/client.ts";
import { type MetaModelSource, metaModelSourceJson, readMetaModelSource } from "./db/json-columns.ts";

export type { MetaModelSource } from "./db/json-columns.ts";

/** The columns of a MetaModel row that its config (K = depth, one block per module) and source give. */
export function metaModelColumns(config: VitConfig, source: MetaModelSource) {
  return {
    imageSize: config.imageSize,
    channels: config.channels,
    patchSize: config.patchSize,
    width: config.width,
    numModules: config.depth,
    heads: config.heads,
    mlpRatio: config.mlpRatio,
    qkvBias: config.qkvBias,
    layerNormEps: config.layerNormEps,
    numClasses: config.numClasses,
    source: metaModelSourceJson(source),
  };
}

/**
 * A meta model's architecture, as the jobs that read it need it: its row, with no drop path (it
 * is used frozen). Its width (and MLP ratio) may differ from a target's; the rest is checked by
 * `metaIncompatibility`.
 */
export function metaModelConfig(meta: MetaModel): VitConfig {
  return {
    imageSize: meta.imageSize,
    channels: meta.channels,
    patchSize: meta.patchSize,
    width: meta.width,
    depth: meta.numModules,
    heads: meta.heads,
    mlpRatio: meta.mlpRatio,
    qkvBias: meta.qkvBias,
    layerNormEps: meta.layerNormEps,
    numClasses: meta.numClasses,
    dropPathRate: 0,
  };
}

/** Where it came from; rows from before `source` existed are still known by their pre-training run. */
export function metaModelSource(meta: MetaModel): MetaModelSource | null {
  const source = readMetaModelSource(meta);
  if (source) return source;
  return meta.sourceRunId ? { kind: "pretrain-run", runId: meta.sourceRunId } : null;
}
