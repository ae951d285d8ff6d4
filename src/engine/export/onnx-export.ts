/**
 * Plain ONNX inference models from trained parameters — what any ONNX Runtime (or other ONNX
 * consumer) loads without this project.
 *
 * Differences from the engine's own eval graphs, and why:
 *  - weights are initializers named by their timm names, not graph inputs or Constant nodes:
 *    the model is self-contained, tools show the weights by name, ORT can fold them;
 *  - the batch dim is symbolic ("batch"), so one file serves any batch size;
 *  - standard opset-17 ops only (contribOps off): no com.microsoft Gelu / FusedMatMul, which
 *    other runtimes and older ORT builds do not have;
 *  - past `externalDataThreshold` bytes of weights (default just under protobuf's 2 GiB message
 *    limit) the larger tensors go to ONNX external-data side files next to the model, each at
 *    a 4 KiB-aligned offset (so ORT can memory-map them) and each file at most
 *    `maxExternalFileBytes` (default 2 GiB: `fs.readFileSync` — the way to load a model from
 *    buffers with ORT's `externalData` option — refuses bigger files, and one typed array is
 *    capped at 2^30 floats).
 *
 * Every file is written atomically (temp + rename), side files before the model, so a crash
 * never leaves a model pointing at missing or half-written data.
 */
import { existsSync, readFileSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { atomicWrite } from "../checkpoint/safetensors.ts";
import { GraphBuilder } from "../ir/builder.ts";
import type { Value } from "../ir/graph.ts";
import { forwardPlan, type VitConfig, validateVitConfig, vitParamSpecs, vitPlan } from "../models/vit.ts";
import { type Initializer, OPSET, toOnnxModel } from "../onnx/serialize.ts";
import type { InputSpec } from "../train/spec.ts";

export class OnnxExportError extends Error {
  override readonly name = "OnnxExportError";
}

/** The symbolic batch dim of exported models. */
export const BATCH_DIM = "batch";

/** protobuf refuses messages of 2 GiB or more; leave 64 MiB for the graph itself. */
export const DEFAULT_EXTERNAL_THRESHOLD = 2 ** 31 - 2 ** 26;
export const DEFAULT_MAX_EXTERNAL_FILE = 2 ** 31 - 1;
/** Tensors smaller than this stay inline even in external mode (onnx's own default). */
export const DEFAULT_MIN_EXTERNAL_TENSOR = 1024;
const EXTERNAL_ALIGN = 4096;

export interface InferenceForwardContext {
  b: GraphBuilder;
  /** A parameter (becomes an initializer of that name). */
  param(name: string): Value;
  input(name: string): Value;
}

/** A forward pass to export: graph inputs, the parameters it may read, and its outputs by name. */
export interface InferenceSpec {
  /** Graph inputs; use the symbolic dim BATCH_DIM (or any name) for a dynamic batch. */
  inputs: InputSpec[];
  params: readonly { name: string; shape: readonly number[] }[];
  forward(ctx: InferenceForwardContext): Record<string, Value>;
  graphName?: string;
}

export interface OnnxExportOptions {
  /** Total weight bytes above which weights go to external data (default ≈ 1.94 GiB). */
  externalDataThreshold?: number;
  /** Upper bound of one external-data file (default 2 GiB − 1). */
  maxExternalFileBytes?: number;
  /** In external mode, tensors below this many bytes stay inline (default 1024). */
  minExternalTensorBytes?: number;
}

export interface OnnxExportResult {
  path: string;
  /** Size of the .onnx file. */
  modelBytes: number;
  /** Parameter bytes, inline and external together. */
  weightBytes: number;
  /** External-data files (absolute paths) with their sizes; empty when all weights are inline. */
  externalFiles: { path: string; bytes: number }[];
  initializers: number;
  /** Declared parameters the forward never read (not exported). */
  unusedParams: string[];
  irNodes: number;
  opset: number;
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const shapeText = (s: readonly number[]) => `[${s.join(", ")}]`;

/**
 * Exports `spec`'s forward with `values` baked in as initializers to an ONNX model at `path`.
 */
export function exportOnnx(
  path: string,
  spec: InferenceSpec,
  values: ReadonlyMap<string, Float32Array>,
  opts: OnnxExportOptions = {},
): OnnxExportResult {
  const threshold = opts.externalDataThreshold ?? DEFAULT_EXTERNAL_THRESHOLD;
  const maxFile = opts.maxExternalFileBytes ?? DEFAULT_MAX_EXTERNAL_FILE;
  const minTensor = opts.minExternalTensorBytes ?? DEFAULT_MIN_EXTERNAL_TENSOR;
  if (threshold > DEFAULT_EXTERNAL_THRESHOLD)
    throw new OnnxExportError(
      `externalDataThreshold ${threshold} is above ${DEFAULT_EXTERNAL_THRESHOLD}: an inline model that large would break protobuf's 2 GiB limit`,
    );
  if (!existsSync(dirname(path) || "."))
    throw new OnnxExportError(`${path}: directory ${dirname(path)} does not exist; create it first`);

  // Build the graph. Parameters become graph inputs the first time the forward reads one; the
  // serialiser then turns exactly those inputs into initializers.
  const declared = new Map(spec.params.map((p) => [p.name, p]));
  const b = new GraphBuilder(spec.graphName ?? "inference");
  const inputs = new Map(spec.inputs.map((i) => [i.name, b.input(i.name, i.dtype, i.shape)]));
  const used = new Map<string, Value>();
  const outputs = spec.forward({
    b,
    param(name) {
      let v = used.get(name);
      if (!v) {
        const p = declared.get(name);
        if (!p)
          throw new OnnxExportError(
            `${path}: the forward reads parameter "${name}", which the spec does not declare`,
          );
        if (inputs.has(name))
          throw new OnnxExportError(`${path}: parameter "${name}" has the name of a graph input`);
        v = b.input(name, "float32", p.shape);
        used.set(name, v);
      }
      return v;
    },
    input(name) {
      const v = inputs.get(name);
      if (!v)
        throw new OnnxExportError(
          `${path}: the forward reads input "${name}", which the spec does not declare`,
        );
      return v;
    },
  });
  for (const [name, v] of Object.entries(outputs)) b.output(name, v);

  // Check the values against the parameters actually exported.
  const problems: string[] = [];
  for (const [name, v] of used) {
    const data = values.get(name);
    const shape = v.shape as number[];
    if (!data) problems.push(`missing value for "${name}" ${shapeText(shape)}`);
    else if (data.length !== numel(shape))
      problems.push(`"${name}": ${data.length} values, shape ${shapeText(shape)} needs ${numel(shape)}`);
  }
  if (problems.length)
    throw new OnnxExportError(
      `${path}: parameter values do not fit the model — ${problems.slice(0, 8).join("; ")}${problems.length > 8 ? `; … and ${problems.length - 8} more` : ""}`,
    );
  for (const [name, data] of values)
    for (let i = 0; i < data.length; i++)
      if (!Number.isFinite(data[i]!))
        throw new OnnxExportError(
          `${path}: parameter "${name}" holds ${data[i]} at index ${i}; refusing to export a diverged model`,
        );

  // Decide inline vs external, and lay out the side files.
  const weightBytes = [...used.keys()].reduce((n, k) => n + values.get(k)!.byteLength, 0);
  const external = weightBytes > threshold;
  const base = basename(path);
  const locationOf = (shard: number) => (shard === 0 ? `${base}.data` : `${base}.data.${shard}`);
  const shards: { name: string; data: Float32Array; offset: number }[][] = [];
  const initializers = new Map<string, Initializer>();
  let offset = 0;
  for (const name of used.keys()) {
    const data = values.get(name)!;
    if (!external || data.byteLength < minTensor) {
      initializers.set(name, { data });
      continue;
    }
    if (data.byteLength > maxFile)
      throw new OnnxExportError(
        `${path}: parameter "${name}" is ${data.byteLength} bytes, more than maxExternalFileBytes (${maxFile})`,
      );
    let start = Math.ceil(offset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
    if (shards.length === 0 || start + data.byteLength > maxFile) {
      shards.push([]);
      start = 0;
    }
    shards.at(-1)!.push({ name, data, offset: start });
    initializers.set(name, {
      external: { location: locationOf(shards.length - 1), offset: start, length: data.byteLength },
    });
    offset = start + data.byteLength;
  }

  const model = toOnnxModel(b.graph, { contribOps: false, initializers });
  if (model.byteLength >= 2 ** 31)
    throw new OnnxExportError(
      `${path}: the model is ${model.byteLength} bytes inline, past protobuf's 2 GiB; lower externalDataThreshold`,
    );

  const externalFiles: { path: string; bytes: number }[] = [];
  shards.forEach((tensors, i) => {
    const file = join(dirname(path), locationOf(i));
    let pos = 0;
    atomicWrite(file, (fd) => {
      for (const t of tensors) {
        if (t.offset > pos) writeAll(fd, new Uint8Array(t.offset - pos)); // alignment padding
        writeAll(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        pos = t.offset + t.data.byteLength;
      }
    });
    externalFiles.push({ path: file, bytes: pos });
  });
  atomicWrite(path, (fd) => writeAll(fd, model));
  // Side files of an earlier export to this path with more shards would only confuse readers.
  for (let i = Math.max(shards.length, 1); existsSync(join(dirname(path), locationOf(i))); i++)
    rmSync(join(dirname(path), locationOf(i)));

  return {
    path,
    modelBytes: model.byteLength,
    weightBytes,
    externalFiles,
    initializers: initializers.size,
    unusedParams: spec.params.map((p) => p.name).filter((n) => !used.has(n)),
    irNodes: b.graph.nodes.length,
    opset: OPSET,
  };
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

/**
 * ORT's `externalData` session option, for loading an exported model from a buffer (a model
 * loaded from its path finds its side files itself). Reads every side file into memory.
 */
export function externalDataFor(result: OnnxExportResult): { path: string; data: Uint8Array }[] {
  return result.externalFiles.map((f) => ({ path: basename(f.path), data: readFileSync(f.path) }));
}

// ---------------------------------------------------------------------------------------------
// ViT

/**
 * The ViT's inference forward: the very forward the trainer compiles (src/engine/models/vit.ts),
 * here with a symbolic batch dimension — one definition of the model for training and export.
 * LayerNorms keep their own affine here (foldNormAffine "never"): folding only pays in the backward,
 * and an exported graph reads best as timm's, with no per-call products on the weights.
 */
export function vitInferenceForward(
  b: GraphBuilder,
  cfg: VitConfig,
  param: (n: string) => Value,
  images: Value,
): Value {
  return forwardPlan(b, cfg, param, images, vitPlan(cfg), undefined, { foldNormAffine: "never" });
}

export function vitInferenceSpec(cfg: VitConfig): InferenceSpec {
  validateVitConfig(cfg);
  return {
    graphName: "vit",
    inputs: [
      { name: "images", dtype: "float32", shape: [BATCH_DIM, cfg.channels, cfg.imageSize, cfg.imageSize] },
    ],
    params: vitParamSpecs(cfg),
    forward: ({ b, param, input }) => ({ logits: vitInferenceForward(b, cfg, param, input("images")) }),
  };
}

/**
 * Exports a ViT (timm names, e.g. `trainer.parameters()` or `loadWeights(...)`) as a plain
 * ONNX model: input `images` [batch, C, H, W] float32, output `logits` [batch, classes].
 */
export function exportVitOnnx(
  path: string,
  cfg: VitConfig,
  values: ReadonlyMap<string, Float32Array>,
  opts: OnnxExportOptions = {},
): OnnxExportResult {
  const spec = vitInferenceSpec(cfg);
  const declared = new Set(spec.params.map((p) => p.name));
  const foreign = [...values.keys()].filter((k) => !declared.has(k));
  if (foreign.length)
    throw new OnnxExportError(
      `${path}: values hold tensors this ViT config does not have: ${foreign.slice(0, 8).join(", ")}${foreign.length > 8 ? ", …" : ""}. Pass the parameters of one plain ViT (e.g. an assembled model), not a checkpoint with optimizer state or a hybrid with prefixed names.`,
    );
  return exportOnnx(path, spec, values, opts);
}
