/**
 * Where a meta model came from — the `MetaModel.source` column, one shape for every writer:
 * pre-trained here by a META_PRETRAIN run, registered as an existing K-block file, or imported
 * from a pre-trained ViT (src/incubation/pretrained.ts).
 */

import type { VitConfig } from "../engine/models/vit.ts";
import type { Prisma } from "../generated/prisma/client.ts";
import type { PretrainedSource } from "../incubation/pretrained.ts";

export type MetaModelSource =
  | { kind: "pretrain-run"; runId: string }
  | { kind: "registered"; fileName: string; sha256: string }
  | ({ kind: "imported" } & PretrainedSource);

/**
 * The columns of a MetaModel row that its config and source give: the architecture fields
 * queries filter on (K = depth, one block per module), the full config, and the source.
 */
export function metaModelColumns(config: VitConfig, source: MetaModelSource) {
  return {
    width: config.width,
    heads: config.heads,
    patchSize: config.patchSize,
    imageSize: config.imageSize,
    numModules: config.depth,
    source: source as unknown as Prisma.InputJsonValue,
    config: config as unknown as Prisma.InputJsonValue,
  };
}
