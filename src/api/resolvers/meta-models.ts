/**
 * Meta models that were not pre-trained here:
 *  - registerMetaModel uses an existing checkpoint as a meta model (one block per module, timm
 *    names). The architecture is read from the tensors themselves — width, channels and patch
 *    from patch_embed, image size from pos_embed, K from the blocks, the classes from the head —
 *    and every tensor is checked against it.
 *  - importMetaModel derives one from a pre-trained ViT (src/incubation/pretrained.ts): K of its
 *    blocks, its embeddings, norm and head.
 * Either way the weights go into the artifact store so workers anywhere can fetch them, and the
 * row records where they came from (`source`) and the full config.
 */

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { loadWeights } from "../../engine/checkpoint/checkpoint.ts";
import { sha256File } from "../../engine/checkpoint/file-hash.ts";
import { type VitConfig, vitParamSpecs } from "../../engine/models/vit.ts";
import { configFromWeights } from "../../engine/models/vit-weights.ts";
import type { MutationResolvers } from "../../generated/graphql.ts";
import type { MetaModel } from "../../generated/prisma/client.ts";
import { ArtifactKind } from "../../generated/prisma/enums.ts";
import {
  importPretrainedMeta,
  type PretrainedFormat,
  PretrainedImportError,
} from "../../incubation/pretrained.ts";
import { type MetaModelSource, metaModelColumns } from "../../platform/meta-model-source.ts";
import type { ApiContext } from "../context.ts";
import { type UserError, userError } from "../user-errors.ts";
import { lookup } from "./run-mutations.ts";

interface RegisterMetaModelInput {
  name: string;
  weightsPath: string;
  heads: number;
  datasetId?: string | null;
}

interface ImportMetaModelInput {
  name: string;
  path: string;
  format?: "SAFETENSORS" | "ONNX" | null;
  heads: number;
  modules: number;
  blocks?: number[] | null;
  numClasses?: number | null;
  datasetId?: string | null;
}

type Payload = { metaModel: MetaModel | null; userErrors: UserError[] };

const fail = (errors: UserError[]): Payload => ({ metaModel: null, userErrors: errors });

/**
 * What both mutations check before reading any weights: a name not yet taken, a file that
 * exists, a dataset that exists. Returns the trimmed name and dataset id, or the errors.
 */
async function checkCommonInput(
  ctx: ApiContext,
  input: { name: string; datasetId?: string | null },
  file: { field: string; path: string },
): Promise<{ name: string; datasetId: string | null } | UserError[]> {
  if (!ctx.artifacts) throw new Error("this server has no artifact store configured");
  const errors: UserError[] = [];
  const name = input.name.trim();
  if (!name) errors.push(userError(["input", "name"], "name must not be empty", "REQUIRED"));
  else if (await ctx.db.metaModel.findUnique({ where: { name }, select: { id: true } }))
    errors.push(userError(["input", "name"], `a meta model named "${name}" already exists`, "TAKEN"));
  if (!existsSync(file.path))
    errors.push(userError(["input", file.field], `no file at ${file.path} on the server`, "NOT_FOUND"));
  const dataset = input.datasetId
    ? await lookup(errors, "datasetId", "Dataset", input.datasetId, (id) => ctx.loaders.dataset.load(id))
    : null;
  return errors.length ? errors : { name, datasetId: dataset?.id ?? null };
}

/** Stores the weights file and writes the artifact and MetaModel rows. */
async function createMetaModel(
  ctx: ApiContext,
  row: { name: string; datasetId: string | null },
  given: { path: string; weightsPath: string },
  config: VitConfig,
  source: MetaModelSource,
): Promise<Payload> {
  const stored = await ctx.artifacts!.putFile(given.weightsPath);
  const artifact = await ctx.db.artifact.create({
    data: {
      kind: ArtifactKind.META_WEIGHTS,
      sha256: stored.sha256,
      sizeBytes: BigInt(stored.sizeBytes),
      metadata: { source: given.path },
    },
  });
  const metaModel = await ctx.db.metaModel.create({
    data: {
      name: row.name,
      ...metaModelColumns(config, source),
      checkpointId: artifact.id,
      ...(row.datasetId ? { datasetId: row.datasetId } : {}),
    },
  });
  return { metaModel, userErrors: [] };
}

async function registerMetaModel(input: RegisterMetaModelInput, ctx: ApiContext): Promise<Payload> {
  const checked = await checkCommonInput(ctx, input, { field: "weightsPath", path: input.weightsPath });
  if (Array.isArray(checked)) return fail(checked);
  let cfg: VitConfig;
  try {
    cfg = configFromWeights(input.weightsPath, input.heads);
    loadWeights(input.weightsPath, { expect: vitParamSpecs(cfg) });
  } catch (error) {
    const message = (error as Error).message;
    const field = /heads/.test(message) ? "heads" : "weightsPath";
    return fail([userError(["input", field], message, "INVALID")]);
  }
  const source: MetaModelSource = {
    kind: "registered",
    fileName: basename(input.weightsPath),
    sha256: await sha256File(input.weightsPath),
  };
  const paths = { path: input.weightsPath, weightsPath: input.weightsPath };
  return createMetaModel(ctx, checked, paths, cfg, source);
}

async function importMetaModel(input: ImportMetaModelInput, ctx: ApiContext): Promise<Payload> {
  const checked = await checkCommonInput(ctx, input, { field: "path", path: input.path });
  if (Array.isArray(checked)) return fail(checked);
  const dir = mkdtempSync(join(tmpdir(), "incubator-import-"));
  try {
    const imported = await importPretrainedMeta({
      path: input.path,
      ...(input.format ? { format: input.format.toLowerCase() as PretrainedFormat } : {}),
      heads: input.heads,
      modules: input.modules,
      ...(input.blocks ? { blocks: input.blocks } : {}),
      ...(input.numClasses != null ? { numClasses: input.numClasses } : {}),
      out: join(dir, "meta.safetensors"),
    });
    const paths = { path: input.path, weightsPath: imported.saved.path };
    return await createMetaModel(ctx, checked, paths, imported.config, {
      kind: "imported",
      ...imported.source,
    });
  } catch (error) {
    if (!(error instanceof PretrainedImportError)) throw error;
    return fail([userError(["input", error.field], error.message, "INVALID")]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const metaModelResolvers = {
  Mutation: {
    registerMetaModel: (_: unknown, { input }: { input: RegisterMetaModelInput }, ctx: ApiContext) =>
      registerMetaModel(input, ctx),
    importMetaModel: (_: unknown, { input }: { input: ImportMetaModelInput }, ctx: ApiContext) =>
      importMetaModel(input, ctx),
  },
} satisfies { Mutation: MutationResolvers };
