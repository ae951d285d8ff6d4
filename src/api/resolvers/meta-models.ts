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
import { mkdtempSync, rmSync } from "node:fs";
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
import { checkArtifactQuota, QuotaExceededError } from "../../platform/artifacts/quota.ts";
import { ARCHITECTURE_LIMITS, INPUT_LIMITS } from "../../platform/limits.ts";
import { type MetaModelSource, metaModelColumns } from "../../platform/meta-model-source.ts";
import { sameProject, targetProjectOf } from "../auth/target-project.ts";
import type { ApiContext } from "../context.ts";
import { fileProblem, insideDataRoots, outsideRootsMessage } from "../data-roots.ts";
import { isUniqueViolation, type UserError, userError } from "../user-errors.ts";
import { lookup } from "./lookup.ts";

interface RegisterMetaModelInput {
  name: string;
  projectId?: string | null;
  weightsPath?: string | null;
  weightsSha256?: string | null;
  heads: number;
  datasetId?: string | null;
}

interface ImportMetaModelInput {
  name: string;
  projectId?: string | null;
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

/** Numbers of either mutation beyond the architecture limits (platform/limits.ts). */
function numberBounds(input: {
  heads: number;
  modules?: number;
  blocks?: number[] | null;
  numClasses?: number | null;
}): UserError[] {
  const errors: UserError[] = [];
  const check = (field: string, value: number | null | undefined, max: number) => {
    if (value != null && (value < 1 || value > max))
      errors.push(userError(["input", field], `${field} must be between 1 and ${max}, got ${value}`));
  };
  check("heads", input.heads, ARCHITECTURE_LIMITS.heads);
  check("modules", input.modules, ARCHITECTURE_LIMITS.modules);
  check("numClasses", input.numClasses, ARCHITECTURE_LIMITS.numClasses);
  if (input.blocks && input.blocks.length > ARCHITECTURE_LIMITS.modules)
    errors.push(
      userError(["input", "blocks"], `blocks may list at most ${ARCHITECTURE_LIMITS.modules} blocks`),
    );
  for (const [i, b] of (input.blocks ?? []).entries()) {
    if (b < 0 || b >= ARCHITECTURE_LIMITS.depth)
      errors.push(
        userError(
          ["input", "blocks", String(i)],
          `blocks[${i}] must be between 0 and ${ARCHITECTURE_LIMITS.depth - 1}, got ${b}`,
        ),
      );
  }
  return errors;
}

/** What both mutations have checked: where the row goes and what it refers to. */
interface CheckedInput {
  name: string;
  projectId: string;
  datasetId: string | null;
  realPath: string;
}

/**
 * What both mutations check before reading any weights: numbers within bounds, the project, a
 * name not yet taken in it, a file inside the data roots, a dataset of the same project.
 */
async function checkCommonInput(
  ctx: ApiContext,
  input: { name: string; projectId?: string | null; datasetId?: string | null; heads: number },
  file: { field: string; path: string },
  /** The file is an upload in the artifact store, not a client-named server path. */
  inStore = false,
): Promise<CheckedInput | UserError[]> {
  if (!ctx.artifacts) throw new Error("this server has no artifact store configured");
  const errors: UserError[] = numberBounds(input);
  const target = await targetProjectOf(ctx, input);
  const projectId = typeof target === "string" ? target : null;
  if (typeof target !== "string") errors.push(target);
  const name = input.name.trim();
  if (!name) errors.push(userError(["input", "name"], "name must not be empty", "REQUIRED"));
  else if (name.length > INPUT_LIMITS.nameLength)
    errors.push(userError(["input", "name"], `name must be at most ${INPUT_LIMITS.nameLength} characters`));
  else if (
    projectId &&
    (await ctx.db.metaModel.findUnique({
      where: { projectId_name: { projectId, name } },
      select: { id: true },
    }))
  )
    errors.push(
      userError(["input", "name"], `a meta model named "${name}" already exists in this project`, "TAKEN"),
    );
  // Before any byte of the file is read: it must lie inside the data roots.
  const realPath = inStore ? file.path : await insideDataRoots(file.path, ctx.dataRoots);
  if (realPath === null)
    errors.push(userError(["input", file.field], outsideRootsMessage(file.field), "NOT_FOUND"));
  const dataset = input.datasetId
    ? await lookup(errors, "datasetId", "Dataset", input.datasetId, (id) => ctx.loaders.dataset.load(id))
    : null;
  if (dataset && projectId) errors.push(...sameProject("datasetId", "dataset", dataset, projectId));
  return errors.length || realPath === null || !projectId
    ? errors
    : { name, projectId, datasetId: dataset?.id ?? null, realPath };
}

/** Stores the weights file and writes the artifact and MetaModel rows. */
async function createMetaModel(
  ctx: ApiContext,
  row: CheckedInput,
  given: { field: string; path: string; weightsPath: string },
  config: VitConfig,
  source: MetaModelSource,
): Promise<Payload> {
  const stored = await ctx.artifacts!.putFile(given.weightsPath);
  try {
    const metaModel = await ctx.db.$transaction(async (tx) => {
      // The weights count against the project's artifact quota (once per content hash).
      await checkArtifactQuota(tx, row.projectId, [stored], ctx.artifactQuotaBytes);
      const artifact = await tx.artifact.create({
        data: {
          projectId: row.projectId,
          kind: ArtifactKind.META_WEIGHTS,
          sha256: stored.sha256,
          sizeBytes: BigInt(stored.sizeBytes),
          // The file's name only: where it lay on the server is not for every reader.
          metadata: { source: basename(given.path) },
        },
      });
      return tx.metaModel.create({
        data: {
          projectId: row.projectId,
          name: row.name,
          ...metaModelColumns(config, source),
          checkpointId: artifact.id,
          ...(row.datasetId ? { datasetId: row.datasetId } : {}),
        },
      });
    });
    return { metaModel, userErrors: [] };
  } catch (error) {
    if (error instanceof QuotaExceededError)
      return fail([userError(["input", given.field], error.message, "QUOTA_EXCEEDED")]);
    if (isUniqueViolation(error))
      return fail([
        userError(
          ["input", "name"],
          `a meta model named "${row.name}" already exists in this project`,
          "TAKEN",
        ),
      ]);
    throw error;
  }
}

const noUpload = () =>
  userError(
    ["input", "weightsSha256"],
    "no file with this sha256 (64 lowercase hex digits) uploaded into this project; upload it first with PUT /artifacts/<sha256>?project=<project ID>",
    "NOT_FOUND",
  );

/**
 * The weights file registerMetaModel reads: a server path inside the data roots, or an upload
 * already in the artifact store (its sha256). Exactly one of the two.
 */
async function weightsFile(
  ctx: ApiContext,
  input: RegisterMetaModelInput,
): Promise<{ field: string; path: string; fileName: string } | UserError> {
  const { weightsPath, weightsSha256 } = input;
  if ((weightsPath == null) === (weightsSha256 == null))
    return userError(["input", "weightsPath"], "give weightsPath or weightsSha256 (one of them)", "REQUIRED");
  if (weightsPath != null)
    return { field: "weightsPath", path: weightsPath, fileName: basename(weightsPath) };
  const sha = weightsSha256!;
  if (!/^[0-9a-f]{64}$/.test(sha) || !(await ctx.artifacts!.has(sha))) return noUpload();
  return { field: "weightsSha256", path: await ctx.artifacts!.getFile(sha), fileName: `${sha}.safetensors` };
}

async function registerMetaModel(input: RegisterMetaModelInput, ctx: ApiContext): Promise<Payload> {
  if (!ctx.artifacts) throw new Error("this server has no artifact store configured");
  const file = await weightsFile(ctx, input);
  if (!("path" in file)) return fail([file]);
  const uploaded = file.field === "weightsSha256";
  const checked = await checkCommonInput(ctx, input, file, uploaded);
  if (Array.isArray(checked)) return fail(checked);
  // An upload is registered only in the project it was uploaded into (PUT /artifacts?project=).
  if (
    uploaded &&
    !(await ctx.db.artifact.findFirst({
      where: { projectId: checked.projectId, sha256: input.weightsSha256! },
      select: { id: true },
    }))
  )
    return fail([noUpload()]);
  const weightsPath = checked.realPath;
  let cfg: VitConfig;
  try {
    cfg = configFromWeights(weightsPath, input.heads);
    loadWeights(weightsPath, { expect: vitParamSpecs(cfg) });
  } catch (error) {
    const message = (error as Error).message;
    // validateVitConfig's messages about heads name numbers, not the file's bytes.
    if (/^heads |by heads \(/.test(message)) return fail([userError(["input", "heads"], message, "INVALID")]);
    const expected = "a safetensors checkpoint of a ViT (timm names, one block per module)";
    return fail([fileProblem(ctx.logger, ctx.requestId, ["input", file.field], expected, error, "INVALID")]);
  }
  const source: MetaModelSource = {
    kind: "registered",
    fileName: file.fileName,
    sha256: await sha256File(weightsPath),
  };
  const paths = { field: file.field, path: file.fileName, weightsPath };
  return createMetaModel(ctx, checked, paths, cfg, source);
}

async function importMetaModel(input: ImportMetaModelInput, ctx: ApiContext): Promise<Payload> {
  const checked = await checkCommonInput(ctx, input, { field: "path", path: input.path });
  if (Array.isArray(checked)) return fail(checked);
  const dir = mkdtempSync(join(tmpdir(), "incubator-import-"));
  try {
    const imported = await importPretrainedMeta({
      path: checked.realPath,
      ...(input.format ? { format: input.format.toLowerCase() as PretrainedFormat } : {}),
      heads: input.heads,
      modules: input.modules,
      ...(input.blocks ? { blocks: input.blocks } : {}),
      ...(input.numClasses != null ? { numClasses: input.numClasses } : {}),
      out: join(dir, "meta.safetensors"),
    });
    const paths = { field: "path", path: input.path, weightsPath: imported.saved.path };
    return await createMetaModel(ctx, checked, paths, imported.config, {
      kind: "imported",
      ...imported.source,
    });
  } catch (error) {
    if (!(error instanceof PretrainedImportError)) throw error;
    if (error.field === "path") {
      const expected = "a pre-trained ViT (safetensors or ONNX, timm names)";
      return fail([fileProblem(ctx.logger, ctx.requestId, ["input", "path"], expected, error, "INVALID")]);
    }
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
