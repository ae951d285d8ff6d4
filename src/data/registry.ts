/**
 * `openDataset(spec)`: one entry point from a JSON dataset spec (what a job spec carries) to a
 * `Dataset`. The spec is validated with zod and every error names the field. Selection happens
 * on labels before any image is read: optional stratified validation hold-out, then an
 * optional class-balanced shard, so a decentralised worker reads and caches only its shard.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Dataset } from "./dataset.ts";
import { DataError } from "./errors.ts";
import { cifarSplitFiles, openCifarDataset, readCifarLabels } from "./formats/cifar.ts";
import { openIdxDataset, readIdxLabels } from "./formats/idx.ts";
import { openImageFolder, scanImageFolder } from "./formats/image-folder.ts";
import { openSynthetic, SYNTHETIC_MAX_CLASSES } from "./formats/synthetic.ts";
import { balancedShards, stratifiedSplit } from "./splits.ts";

const seed = z.number().int().min(0).max(0xffffffff);
const imageSize = z.union([
  z.number().int().min(1).max(4096),
  z.tuple([z.number().int().min(1).max(4096), z.number().int().min(1).max(4096)]),
]);

const selection = {
  split: z.enum(["train", "test"]).default("train"),
  /** Stratified hold-out of the split: `part` chooses which side this dataset is. */
  validation: z
    .object({ fraction: z.number().gt(0).lt(1), seed: seed.default(0), part: z.enum(["train", "val"]) })
    .strict()
    .optional(),
  /** Class-balanced shard `index` of `count` (decentralised modular training). */
  shard: z
    .object({ count: z.number().int().min(1), index: z.number().int().min(0), seed: seed.default(0) })
    .strict()
    .optional(),
};

const idxSpec = z
  .object({
    format: z.literal("idx"),
    /** Directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. */
    path: z.string().min(1).optional(),
    /** Or the two files explicitly. */
    images: z.string().min(1).optional(),
    labels: z.string().min(1).optional(),
    numClasses: z.number().int().min(2).optional(),
    classNames: z.array(z.string()).optional(),
    ...selection,
  })
  .strict();

const cifar10Spec = z
  .object({
    format: z.literal("cifar10"),
    /** Extracted cifar-10-batches-bin directory. */
    path: z.string().min(1),
    ...selection,
  })
  .strict();

const cifar100Spec = z
  .object({
    format: z.literal("cifar100"),
    /** Extracted cifar-100-binary directory. */
    path: z.string().min(1),
    labelMode: z.enum(["fine", "coarse"]).default("fine"),
    ...selection,
  })
  .strict();

const folderSpec = z
  .object({
    format: z.literal("image-folder"),
    /** Root of class subdirectories, or of `train/` and `test/` folders that hold them. */
    path: z.string().min(1),
    imageSize: imageSize.default(224),
    channels: z.union([z.literal(1), z.literal(3)]).default(3),
    fit: z.enum(["cover", "stretch"]).default("cover"),
    classes: z.array(z.string().min(1)).optional(),
    ...selection,
  })
  .strict();

const syntheticSpec = z
  .object({
    format: z.literal("synthetic"),
    numClasses: z.number().int().min(2).max(SYNTHETIC_MAX_CLASSES).default(10),
    channels: z.number().int().min(1).max(16).default(3),
    imageSize: imageSize.default(32),
    /** Records in the split; default 10,000 for train and 2,000 for test. */
    length: z.number().int().min(1).optional(),
    seed: seed.default(0),
    difficulty: z.number().min(0).max(10).default(1),
    ...selection,
  })
  .strict();

export const datasetSpecSchema = z
  .discriminatedUnion("format", [idxSpec, cifar10Spec, cifar100Spec, folderSpec, syntheticSpec])
  .superRefine((spec, ctx) => {
    if (spec.shard && spec.shard.index >= spec.shard.count) {
      ctx.addIssue({
        code: "custom",
        path: ["shard", "index"],
        message: `must be < shard.count (${spec.shard.count}); shards are numbered 0..${spec.shard.count - 1}`,
      });
    }
    if (spec.format === "idx" && !spec.path && !(spec.images && spec.labels)) {
      ctx.addIssue({
        code: "custom",
        path: ["path"],
        message: "idx needs either path (a directory) or both images and labels (file paths)",
      });
    }
  });

export type DatasetSpec = z.input<typeof datasetSpecSchema>;
export type ParsedDatasetSpec = z.output<typeof datasetSpecSchema>;

/** Validates a spec; the error lists every bad field by its path, e.g. `shard.index`. */
export function parseDatasetSpec(spec: unknown): ParsedDatasetSpec {
  const result = datasetSpecSchema.safeParse(spec);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const field = issue.path.length > 0 ? issue.path.join(".") : "(spec)";
    return `  field "${field}": ${issue.message}`;
  });
  throw new DataError(`invalid dataset spec:\n${lines.join("\n")}`, { source: "dataset spec" });
}

function sizeOf(s: number | readonly [number, number]): [number, number] {
  return typeof s === "number" ? [s, s] : [s[0], s[1]];
}

function idxFiles(spec: Extract<ParsedDatasetSpec, { format: "idx" }>): { images: string; labels: string } {
  if (spec.images && spec.labels) return { images: spec.images, labels: spec.labels };
  const dir = spec.path!;
  const prefix = spec.split === "train" ? "train" : "t10k";
  const find = (kind: string) => {
    for (const name of [`${prefix}-${kind}-ubyte.gz`, `${prefix}-${kind}-ubyte`, `${prefix}-${kind}.ubyte`]) {
      if (existsSync(join(dir, name))) return join(dir, name);
    }
    throw new DataError(
      `no ${prefix}-${kind}-ubyte[.gz] in this directory; set "path" to the folder with the IDX files ` +
        `or give "images" and "labels" explicitly (Fashion-MNIST: apt-get install dataset-fashion-mnist ` +
        `puts them in /usr/share/datasets/fashion-mnist)`,
      { source: dir },
    );
  };
  return { images: find("images-idx3"), labels: find("labels-idx1") };
}

function folderRoot(spec: Extract<ParsedDatasetSpec, { format: "image-folder" }>): string {
  const candidates = spec.split === "test" ? ["test", "val"] : ["train"];
  for (const c of candidates) {
    const p = join(spec.path, c);
    if (existsSync(p) && statSync(p).isDirectory()) return p;
  }
  return spec.path;
}

function syntheticLength(spec: Extract<ParsedDatasetSpec, { format: "synthetic" }>): number {
  return spec.length ?? (spec.split === "train" ? 10_000 : 2_000);
}

/** Labels of every record of the spec's split, read without decoding images. */
export async function readDatasetLabels(spec: ParsedDatasetSpec): Promise<Int32Array> {
  switch (spec.format) {
    case "idx":
      return readIdxLabels(idxFiles(spec).labels);
    case "cifar10":
      return readCifarLabels("cifar10", cifarSplitFiles(spec.path, "cifar10", spec.split));
    case "cifar100":
      return readCifarLabels("cifar100", cifarSplitFiles(spec.path, "cifar100", spec.split), spec.labelMode);
    case "image-folder":
      return scanImageFolder(folderRoot(spec), spec.classes).labels;
    case "synthetic": {
      const [h, w] = sizeOf(spec.imageSize);
      const ds = openSynthetic({ ...spec, height: h, width: w, length: syntheticLength(spec) });
      return ds.labels;
    }
  }
}

/** The record numbers the spec selects (validation part, then shard), or undefined for all. */
export async function selectRecords(spec: ParsedDatasetSpec): Promise<Int32Array | undefined> {
  if (!spec.validation && !spec.shard) return undefined;
  const labels = await readDatasetLabels(spec);
  let subset: Int32Array | undefined;
  if (spec.validation) {
    const { train, val } = stratifiedSplit(labels, spec.validation.fraction, spec.validation.seed);
    subset = spec.validation.part === "val" ? val : train;
  }
  if (spec.shard) {
    subset = balancedShards(labels, spec.shard.count, spec.shard.seed, subset)[spec.shard.index]!;
  }
  return subset;
}

export interface OpenDatasetOptions {
  /**
   * Load exactly these records of the split's files (any order). Not combinable with the
   * spec's `validation` or `shard`, which already choose the records.
   */
  indices?: ArrayLike<number>;
}

/** Opens the dataset a spec describes, reading only the selected records. */
export async function openDataset(spec: unknown, options: OpenDatasetOptions = {}): Promise<Dataset> {
  const parsed = parseDatasetSpec(spec);
  if (options.indices && (parsed.validation || parsed.shard)) {
    throw new DataError(
      "options.indices cannot be combined with spec.validation or spec.shard; use one way of selecting records",
      { source: "openDataset" },
    );
  }
  const selected = options.indices ?? (await selectRecords(parsed));
  const indices = selected ? { indices: selected } : {};
  switch (parsed.format) {
    case "idx":
      return openIdxDataset({
        ...idxFiles(parsed),
        ...indices,
        ...(parsed.numClasses ? { numClasses: parsed.numClasses } : {}),
        ...(parsed.classNames ? { classNames: parsed.classNames } : {}),
      });
    case "cifar10":
      return openCifarDataset({
        variant: "cifar10",
        files: cifarSplitFiles(parsed.path, "cifar10", parsed.split),
        ...indices,
      });
    case "cifar100":
      return openCifarDataset({
        variant: "cifar100",
        files: cifarSplitFiles(parsed.path, "cifar100", parsed.split),
        labelMode: parsed.labelMode,
        ...indices,
      });
    case "image-folder": {
      const [height, width] = sizeOf(parsed.imageSize);
      return openImageFolder({
        root: folderRoot(parsed),
        height,
        width,
        channels: parsed.channels,
        fit: parsed.fit,
        ...(parsed.classes ? { classes: parsed.classes } : {}),
        ...indices,
      });
    }
    case "synthetic": {
      const [height, width] = sizeOf(parsed.imageSize);
      return openSynthetic({
        numClasses: parsed.numClasses,
        channels: parsed.channels,
        height,
        width,
        length: syntheticLength(parsed),
        seed: parsed.seed,
        split: parsed.split,
        difficulty: parsed.difficulty,
        ...indices,
      });
    }
  }
}
