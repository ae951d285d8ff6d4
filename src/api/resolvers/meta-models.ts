/**
 * registerMetaModel: use an existing checkpoint as a meta model (one block per module, timm
 * names) instead of pre-training one. The architecture is read from the tensors themselves —
 * width, channels and patch from patch_embed, image size from pos_embed, K from the blocks, the
 * classes from the head — every tensor is checked against it, and the file is copied into the
 * artifact store so workers anywhere can fetch it.
 */
import { existsSync } from "node:fs";
import { CheckpointError, loadWeights } from "../../engine/checkpoint/checkpoint.ts";
import { openSafetensors } from "../../engine/checkpoint/safetensors.ts";
import { VIT_DEFAULTS, type VitConfig, validateVitConfig, vitParamSpecs } from "../../engine/models/vit.ts";
import type { ApiContext } from "../context.ts";
import { fromGlobalId } from "../global-id.ts";
import { type UserError, userError } from "../user-errors.ts";

interface RegisterMetaModelInput {
  name: string;
  weightsPath: string;
  heads: number;
  datasetId?: string | null;
}

/** The ViT a safetensors file with timm names describes (heads cannot be read from shapes). */
export function configFromWeights(path: string, heads: number): VitConfig {
  const file = openSafetensors(path);
  try {
    const shape = (name: string) => {
      const info = file.info(name);
      if (!info) throw new CheckpointError(`${path}: no tensor "${name}" (expected timm ViT names)`);
      return info.shape;
    };
    const [width, channels, patchSize] = shape("patch_embed.proj.weight") as [number, number, number];
    const tokens = shape("pos_embed")[1]!;
    const grid = Math.round(Math.sqrt(tokens - 1));
    if (grid * grid !== tokens - 1)
      throw new CheckpointError(`${path}: pos_embed has ${tokens} tokens, not 1 + a square grid`);
    const depth = new Set(file.names.filter((n) => n.startsWith("blocks.")).map((n) => n.split(".")[1])).size;
    const hidden = shape("blocks.0.mlp.fc1.weight")[0]!;
    return validateVitConfig({
      ...VIT_DEFAULTS,
      imageSize: grid * patchSize,
      channels,
      patchSize,
      width,
      depth,
      heads,
      mlpRatio: hidden / width,
      qkvBias: file.names.includes("blocks.0.attn.qkv.bias"),
      numClasses: shape("head.weight")[0]!,
    });
  } finally {
    file.close();
  }
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
