/**
 * registerMetaModel: use an existing checkpoint as a meta model (one block per module, timm
 * names) instead of pre-training one. The architecture is read from the tensors themselves —
 * width, channels and patch from patch_embed, image size from pos_embed, K from the blocks, the
 * classes from the head — every tensor is checked against it, and the file is copied into the
 * artifact store so workers anywhere can fetch it.
 */
import { existsSync } from "node:fs";
import { loadWeights } from "../../engine/checkpoint/checkpoint.ts";
import { type VitConfig, vitParamSpecs } from "../../engine/models/vit.ts";
import { configFromWeights } from "../../engine/models/vit-weights.ts";
import type { ApiContext } from "../context.ts";
import { fromGlobalId } from "../global-id.ts";
import { type UserError, userError } from "../user-errors.ts";

interface RegisterMetaModelInput {
  name: string;
  weightsPath: string;
  heads: number;
  datasetId?: string | null;
}

export const metaModelResolvers = {
  Mutation: {
    registerMetaModel: async (_: unknown, { input }: { input: RegisterMetaModelInput }, ctx: ApiContext) => {
      const fail = (errors: UserError[]) => ({ metaModel: null, userErrors: errors });
      const name = input.name.trim();
      if (!name) return fail([userError(["input", "name"], "name must not be empty", "REQUIRED")]);
      if (!ctx.artifacts) throw new Error("this server has no artifact store configured");
      if (!existsSync(input.weightsPath)) {
        return fail([
          userError(["input", "weightsPath"], `no file at ${input.weightsPath} on the server`, "NOT_FOUND"),
        ]);
      }
      let cfg: VitConfig;
      try {
        cfg = configFromWeights(input.weightsPath, input.heads);
        loadWeights(input.weightsPath, { expect: vitParamSpecs(cfg) });
      } catch (error) {
        const message = (error as Error).message;
        const field = /heads/.test(message) ? "heads" : "weightsPath";
        return fail([userError(["input", field], message, "INVALID")]);
      }
      const datasetId = input.datasetId ? fromGlobalId("Dataset", input.datasetId, "input.datasetId") : null;
      if (await ctx.db.metaModel.findUnique({ where: { name }, select: { id: true } })) {
        return fail([userError(["input", "name"], `a meta model named "${name}" already exists`, "TAKEN")]);
      }
      const stored = await ctx.artifacts.putFile(input.weightsPath);
      const artifact = await ctx.db.artifact.create({
        data: {
          kind: "meta-weights",
          sha256: stored.sha256,
          sizeBytes: BigInt(stored.sizeBytes),
          metadata: { source: input.weightsPath },
        },
      });
      const metaModel = await ctx.db.metaModel.create({
        data: {
          name,
          width: cfg.width,
          heads: cfg.heads,
          patchSize: cfg.patchSize,
          imageSize: cfg.imageSize,
          numModules: cfg.depth,
          checkpointId: artifact.id,
          ...(datasetId ? { datasetId } : {}),
        },
      });
      return { metaModel, userErrors: [] };
    },
  },
};
