/**
 * Pre-trained ViTs as meta models: read a ViT with timm parameter names from safetensors or
 * ONNX, keep K of its blocks, and write them as a K-block meta model (blocks.0…K−1) with the
 * source's patch embedding, class token, position embedding, final norm and head.
 *
 * Rules (one place for each):
 *  - Names are timm's (src/engine/models/vit.ts). A wrapper prefix carried by *every* tensor
 *    name is stripped: `module.` (DistributedDataParallel) and `model.` (Lightning, some Hub
 *    exports), also nested (`model.module.`). Nothing else is renamed.
 *  - Tensors a plain ViT does not have (a distilled DeiT's dist_token/head_dist, LayerScale
 *    ls1/ls2, register tokens, fc_norm) are refused, not dropped: dropping them would silently
 *    change what the model computes (a distillation token also holds a place in pos_embed).
 *  - ONNX: the weights are the floating-point initializers (FLOAT, FLOAT16, BFLOAT16, DOUBLE;
 *    raw_data, float_data/double_data/int32_data, or external data files next to the model,
 *    which must stay inside the model's directory) named like state-dict keys. Initializers
 *    named otherwise ("const#45", "onnx::Mul_12") and non-float ones are graph constants and
 *    are ignored. Values are converted to float32.
 *  - Default blocks: round(linspace(0, D−1, K)), halves rounded up: the first and the last block
 *    are always kept, so the embedding feeds the block it was trained to feed and the head reads
 *    the block it was trained to read; the others are evenly spaced (D=12, K=4 → 0,4,7,11).
 *    Explicit blocks must be K distinct indices in increasing order (the meta stages keep the
 *    source's order).
 *  - `numClasses` different from the source's (or a source without head, timm's num_classes=0)
 *    gives the meta model a zero head of that size: zeros, like timm's reset_classifier for the
 *    bias, so the meta model's logits start neutral rather than random.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { basename, dirname, extname, isAbsolute, relative, resolve } from "node:path";
import { layoutProblems, listSome, type SavedFile, saveWeights } from "../engine/checkpoint/checkpoint.ts";
import { sha256File } from "../engine/checkpoint/file-hash.ts";
import { DTYPE_BYTES, type Dtype, openSafetensors, toFloat32 } from "../engine/checkpoint/safetensors.ts";
import {
  blockParamSpecs,
  embedParamSpecs,
  headParamSpecs,
  type VitConfig,
  validateVitConfig,
  vitParamSpecs,
} from "../engine/models/vit.ts";
import { configFromShapes } from "../engine/models/vit-weights.ts";
import { onnx } from "../engine/onnx/proto.ts";

export type PretrainedFormat = "safetensors" | "onnx";

/** The input fields an import error is about (the GraphQL mutation maps them to userErrors). */
export type ImportField = "path" | "format" | "heads" | "modules" | "blocks" | "numClasses";

export class PretrainedImportError extends Error {
  override readonly name = "PretrainedImportError";
  constructor(
    readonly field: ImportField,
    message: string,
  ) {
    super(message);
  }
}

/** Where a derived meta model came from; stored with it (file metadata, MetaModel.source). */
export interface PretrainedSource {
  format: PretrainedFormat;
  fileName: string;
  sha256: string;
  /** ONNX external-data files the weights were read from, each with its sha256. */
  externalData?: { fileName: string; sha256: string }[];
  /** Wrapper prefix stripped from every tensor name ("" when none). */
  strippedPrefix: string;
  /** Blocks of the source model. */
  depth: number;
  /** Source block of each meta stage: meta blocks.j = source blocks.{blocks[j]}. */
  blocks: number[];
  heads: number;
  /** Classes of the source's head (null: it had none). */
  sourceNumClasses: number | null;
  /** True when the meta model got a fresh zero head instead of the source's. */
  headReset: boolean;
}

export interface ImportOptions {
  path: string;
  /** Default: from the extension (.safetensors, .onnx). */
  format?: PretrainedFormat;
  heads: number;
  /** K: meta stages, one per module of the targets it will serve. */
  modules: number;
  /** Source block of each meta stage; default evenly spaced (see the header). */
  blocks?: readonly number[];
  /** Classes of the meta model's head, when they differ from the source's. */
  numClasses?: number;
  /** Where the meta model's weights (safetensors) go. */
  out: string;
}

export interface ImportedMeta {
  /** The meta model: the source's config with depth K (and numClasses when reset). */
  config: VitConfig;
  /** The source model as read from its weights. */
  sourceConfig: VitConfig;
  source: PretrainedSource;
  saved: SavedFile;
}

/** Metadata key of the derived file that holds the source record (JSON). */
export const SOURCE_METADATA_KEY = "incubator.source";

export const WRAPPER_PREFIXES = ["module.", "model."] as const;

// ---- reading weights ------------------------------------------------------------------------

/** Weights of one file by (prefix-stripped) name, read one tensor at a time. */
interface WeightsFile {
  shapes: Map<string, number[]>;
  strippedPrefix: string;
  /** Files besides the named one that hold weights (ONNX external data). */
  sideFiles: string[];
  read(name: string): Float32Array;
  close(): void;
}

type RawWeightsFile = Omit<WeightsFile, "strippedPrefix">;

export function formatOf(path: string, format?: PretrainedFormat): PretrainedFormat {
  if (format) return format;
  const ext = extname(path).toLowerCase();
  if (ext === ".safetensors") return "safetensors";
  if (ext === ".onnx") return "onnx";
  throw new PretrainedImportError(
    "format",
    `cannot tell the format of "${basename(path)}" from its extension; name it .safetensors or .onnx, or pass the format (safetensors or onnx)`,
  );
}

function openSafetensorsWeights(path: string): RawWeightsFile {
  let file: ReturnType<typeof openSafetensors>;
  try {
    file = openSafetensors(path);
  } catch (error) {
    throw new PretrainedImportError("path", (error as Error).message);
  }
  return {
    shapes: new Map(file.names.map((name) => [name, file.info(name).shape])),
    sideFiles: [],
    read: (name) => toFloat32(file.read(name)),
    close: () => file.close(),
  };
}

/** ONNX TensorProto data types that hold weights, as the safetensors dtype of the same bytes. */
const ONNX_FLOAT_TYPES: Record<number, Dtype> = { 1: "F32", 10: "F16", 11: "F64", 16: "BF16" };

/**
 * A state-dict key: dotted identifiers. ONNX initializers named otherwise are graph constants
 * that exporters add ("const#45" from ours, "onnx::Mul_12" or "/blocks.0/attn/Constant_output_0"
 * from torch.onnx), never weights, and so are non-float initializers (shapes, indices).
 */
const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$/;

type OnnxTensor = InstanceType<typeof onnx.TensorProto>;

function openOnnxWeights(path: string): RawWeightsFile {
  const fail = (msg: string) => new PretrainedImportError("path", `${path}: ${msg}`);
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(readFileSync(path));
  } catch (error) {
    throw fail(`not an ONNX model (${(error as Error).message})`);
  }
  const dir = dirname(resolve(path));
  const tensors = new Map<string, OnnxTensor>();
  for (const t of model.graph?.initializer ?? [])
    if (t.name && PARAMETER_NAME.test(t.name) && t.dataType != null && t.dataType in ONNX_FLOAT_TYPES)
      tensors.set(t.name, t as OnnxTensor);
  if (tensors.size === 0)
    throw fail(
      "has no floating-point initializers; export the model with its weights as initializers (torch.onnx.export does by default)",
    );

  const externalOf = (t: OnnxTensor) => {
    const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
    const location = kv.location ?? "";
    const file = resolve(dir, location);
    // The ONNX spec: locations are relative paths inside the model's directory.
    if (!location || isAbsolute(location) || relative(dir, file).startsWith(".."))
      throw fail(
        `initializer "${t.name}": external data location "${location}" is not a file next to the model`,
      );
    return {
      file,
      offset: Number(kv.offset ?? 0),
      length: kv.length === undefined ? undefined : Number(kv.length),
    };
  };
  const sideFiles = new Set<string>();
  for (const t of tensors.values())
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) sideFiles.add(externalOf(t).file);
  for (const file of sideFiles)
    if (!existsSync(file))
      throw fail(`external data file ${basename(file)} is missing; copy it next to the model`);

  const bytesOf = (t: OnnxTensor, dtype: Dtype, count: number): Uint8Array => {
    const size = count * DTYPE_BYTES[dtype];
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const { file, offset, length } = externalOf(t);
      if (length !== undefined && length !== size)
        throw fail(`initializer "${t.name}": external length ${length} bytes, its shape needs ${size}`);
      const out = new Uint8Array(size);
      const fd = openSync(file, "r");
      try {
        let done = 0;
        while (done < size) {
          const n = readSync(fd, out, done, size - done, offset + done);
          if (n === 0) throw fail(`external data file ${basename(file)} ends before initializer "${t.name}"`);
          done += n;
        }
      } finally {
        closeSync(fd);
      }
      return out;
    }
    if (t.rawData?.length) return t.rawData;
    const typed =
      dtype === "F32"
        ? Float32Array.from(t.floatData)
        : dtype === "F64"
          ? Float64Array.from(t.doubleData)
          : Uint16Array.from(t.int32Data); // FLOAT16 / BFLOAT16 bits, one per int32
    return new Uint8Array(typed.buffer);
  };

  return {
    shapes: new Map([...tensors].map(([name, t]) => [name, t.dims.map(Number)])),
    sideFiles: [...sideFiles],
    read: (name) => {
      const t = tensors.get(name)!;
      const dtype = ONNX_FLOAT_TYPES[t.dataType]!;
      const shape = t.dims.map(Number);
      const count = shape.reduce((a, b) => a * b, 1);
      const bytes = bytesOf(t, dtype, count);
      if (bytes.byteLength !== count * DTYPE_BYTES[dtype])
        throw fail(
          `initializer "${name}" holds ${bytes.byteLength / DTYPE_BYTES[dtype]} values, its shape [${shape.join(", ")}] needs ${count}`,
        );
      return toFloat32({ dtype, shape, bytes });
    },
    close: () => {},
  };
}

/** The wrapper prefix every name carries (e.g. "module."), nested ones included; "" if none. */
export function wrapperPrefix(names: readonly string[]): string {
  let prefix = "";
  for (;;) {
    const next = WRAPPER_PREFIXES.find(
      (p) => names.length > 0 && names.every((n) => n.startsWith(prefix + p)),
    );
    if (!next) return prefix;
    prefix += next;
  }
}

function openWeights(path: string, format: PretrainedFormat): WeightsFile {
  if (!existsSync(path)) throw new PretrainedImportError("path", `${path}: no such file`);
  const raw = format === "onnx" ? openOnnxWeights(path) : openSafetensorsWeights(path);
  const prefix = wrapperPrefix([...raw.shapes.keys()]);
  return {
    ...raw,
    shapes: new Map([...raw.shapes].map(([name, shape]) => [name.slice(prefix.length), shape])),
    strippedPrefix: prefix,
    read: (name) => raw.read(prefix + name),
  };
}

// ---- checking the source --------------------------------------------------------------------

/** Tensors of ViT variants this importer does not read, and what they mean. */
const VARIANTS: [RegExp, string][] = [
  [
    /^(dist_token|head_dist\.)/,
    "dist_token/head_dist belong to a distilled DeiT, whose distillation token also holds a place in pos_embed",
  ],
  [/\.ls[12]\./, "ls1/ls2 are LayerScale (e.g. DeiT-III), which the engine's blocks do not have"],
  [/^reg_token/, "reg_token holds register tokens, which the engine's ViT does not have"],
  [/^fc_norm\./, "fc_norm belongs to a ViT that average-pools its tokens instead of reading the class token"],
];

function variantHints(names: Iterable<string>): string {
  const hints = VARIANTS.filter(([pattern]) => [...names].some((n) => pattern.test(n))).map(([, why]) => why);
  return hints.length ? ` (${hints.join("; ")})` : "";
}

/** The source's config, with every tensor checked against it; throws what is wrong and the fix. */
function readSourceConfig(file: WeightsFile, where: string, heads: number, numClasses?: number): VitConfig {
  const fix =
    "Import a plain timm VisionTransformer (class token, pre-norm blocks, timm names); tensors of other variants are refused rather than dropped, since dropping them would change what the model computes.";
  if (!file.shapes.has("head.weight") && numClasses === undefined)
    throw new PretrainedImportError(
      "numClasses",
      `${where} has no head ("head.weight"; a feature extractor saved with num_classes=0?): pass numClasses to give the meta model a fresh zero head`,
    );
  let cfg: VitConfig;
  try {
    cfg = configFromShapes(
      file.shapes,
      heads,
      where,
      numClasses === undefined ? {} : { numClassesIfHeadless: numClasses },
    );
  } catch (error) {
    const message = (error as Error).message;
    // validateVitConfig's messages about heads (not a file name that happens to say "heads")
    if (/^heads |by heads \(/.test(message)) throw new PretrainedImportError("heads", message);
    throw new PretrainedImportError("path", `${message}${variantHints(file.shapes.keys())}`);
  }
  const headless = !file.shapes.has("head.weight") && !file.shapes.has("head.bias");
  const expected = vitParamSpecs(cfg).filter((s) => !(headless && s.name.startsWith("head.")));
  const problems = layoutProblems(file.shapes, expected);
  if (problems.length)
    throw new PretrainedImportError(
      "path",
      `${where}: not a plain ViT with timm names — ${listSome(problems)}${variantHints(file.shapes.keys())}. ${fix}`,
    );
  return cfg;
}

// ---- choosing blocks ------------------------------------------------------------------------

/** round(linspace(0, depth−1, k)), halves up: first and last block kept, the rest evenly spaced. */
export function evenlySpacedBlocks(depth: number, k: number): number[] {
  if (k === 1) return [0];
  return Array.from({ length: k }, (_, j) => Math.round((j * (depth - 1)) / (k - 1)));
}

/** The source block of each meta stage: `blocks` checked, or evenly spaced. */
export function chooseMetaBlocks(depth: number, modules: number, blocks?: readonly number[]): number[] {
  if (!Number.isInteger(modules) || modules < 1)
    throw new PretrainedImportError("modules", `modules must be a positive integer, got ${modules}`);
  if (modules > depth)
    throw new PretrainedImportError(
      "modules",
      `modules (${modules}) cannot exceed the source model's depth (${depth}): each meta stage is one source block`,
    );
  if (blocks === undefined) return evenlySpacedBlocks(depth, modules);
  const fail = (msg: string) => new PretrainedImportError("blocks", msg);
  if (blocks.length !== modules)
    throw fail(`blocks must list ${modules} block indices (one per module), got ${blocks.length}`);
  blocks.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 0 || b >= depth)
      throw fail(`blocks[${i}] must be a block of the source, 0…${depth - 1}, got ${b}`);
    const first = blocks.indexOf(b);
    if (first !== i)
      throw fail(`blocks[${i}] (${b}) repeats blocks[${first}]: each meta stage needs its own block`);
    if (i > 0 && b < blocks[i - 1]!)
      throw fail(
        `blocks must increase: blocks[${i}] (${b}) comes after blocks[${i - 1}] (${blocks[i - 1]}); list them in the source's order, which the meta stages keep`,
      );
  });
  return [...blocks];
}

// ---- the import -----------------------------------------------------------------------------

/** Reads a pre-trained ViT, derives a K-block meta model from it and writes it to `opts.out`. */
export async function importPretrainedMeta(opts: ImportOptions): Promise<ImportedMeta> {
  const format = formatOf(opts.path, opts.format);
  if (!Number.isInteger(opts.heads) || opts.heads < 1)
    throw new PretrainedImportError("heads", `heads must be a positive integer, got ${opts.heads}`);
  if (opts.numClasses !== undefined && (!Number.isInteger(opts.numClasses) || opts.numClasses < 1))
    throw new PretrainedImportError(
      "numClasses",
      `numClasses must be a positive integer, got ${opts.numClasses}`,
    );
  const where = basename(opts.path);
  const file = openWeights(opts.path, format);
  try {
    const sourceConfig = readSourceConfig(file, where, opts.heads, opts.numClasses);
    const blocks = chooseMetaBlocks(sourceConfig.depth, opts.modules, opts.blocks);
    const sourceNumClasses = file.shapes.has("head.weight") ? sourceConfig.numClasses : null;
    const numClasses = opts.numClasses ?? sourceConfig.numClasses;
    const headReset = sourceNumClasses !== numClasses;
    const config = validateVitConfig({ ...sourceConfig, depth: blocks.length, numClasses });

    // Meta name → source name; a reset head is not read from the source.
    const sourceOf = new Map<string, string>();
    for (const s of embedParamSpecs(config)) sourceOf.set(s.name, s.name);
    blocks.forEach((b, j) => {
      const from = blockParamSpecs(config, b);
      blockParamSpecs(config, j).forEach((s, i) => {
        sourceOf.set(s.name, from[i]!.name);
      });
    });
    for (const s of headParamSpecs(config))
      if (!(headReset && s.name.startsWith("head."))) sourceOf.set(s.name, s.name);
    const specs = vitParamSpecs(config);
    const parameters = new Map(
      specs.map((s) => {
        const from = sourceOf.get(s.name);
        const size = s.shape.reduce((a, b) => a * b, 1);
        return [s.name, from ? file.read(from) : new Float32Array(size)] as const;
      }),
    );

    const source: PretrainedSource = {
      format,
      fileName: where,
      sha256: await sha256File(opts.path),
      ...(file.sideFiles.length
        ? {
            externalData: await Promise.all(
              file.sideFiles.map(async (f) => ({ fileName: basename(f), sha256: await sha256File(f) })),
            ),
          }
        : {}),
      strippedPrefix: file.strippedPrefix,
      depth: sourceConfig.depth,
      blocks,
      heads: opts.heads,
      sourceNumClasses,
      headReset,
    };
    const saved = saveWeights(
      opts.out,
      { parameters, shapes: specs },
      { metadata: { [SOURCE_METADATA_KEY]: JSON.stringify(source) } },
    );
    return { config, sourceConfig, source, saved };
  } finally {
    file.close();
  }
}
