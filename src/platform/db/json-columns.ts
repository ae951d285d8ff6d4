/**
 * The JSON columns whose shape is ours, each read through its zod schema here and nowhere
 * else: `MetaModel.source` and `Dataset.options`. A row that does not fit throws, naming the
 * row and the field, instead of passing an unchecked cast on to the code that reads it.
 */
import { z } from "zod";
import { DataError } from "../../data/errors.ts";
import { type ParsedDatasetSpec, parseDatasetSpec } from "../../data/registry.ts";
import type { Dataset, Prisma } from "../../generated/prisma/client.ts";
import type { PretrainedSource } from "../../incubation/pretrained.ts";

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const importedSource = z.object({
  kind: z.literal("imported"),
  format: z.enum(["safetensors", "onnx"]),
  fileName: z.string(),
  sha256,
  externalData: z.array(z.object({ fileName: z.string(), sha256 })).optional(),
  strippedPrefix: z.string(),
  depth: z.number().int(),
  blocks: z.array(z.number().int()),
  heads: z.number().int(),
  sourceNumClasses: z.number().int().nullable(),
  headReset: z.boolean(),
});

/** Where a meta model came from (`MetaModel.source`); see src/platform/meta-model-source.ts. */
export const metaModelSourceSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("pretrain-run"), runId: z.string().min(1) }),
  z.object({ kind: z.literal("registered"), fileName: z.string(), sha256 }),
  importedSource,
]);

export type MetaModelSource = z.infer<typeof metaModelSourceSchema>;

// The imported variant is the record src/incubation/pretrained.ts writes: the type checker
// refuses this line when the two drift apart.
type Imported = Omit<Extract<MetaModelSource, { kind: "imported" }>, "kind">;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const IMPORTED_IS_PRETRAINED_SOURCE: Same<Imported, PretrainedSource> = true;

/** `MetaModel.source` as stored (null: rows from before the column). */
export function readMetaModelSource(row: { name: string; source: Prisma.JsonValue }): MetaModelSource | null {
  if (row.source === null) return null;
  const parsed = metaModelSourceSchema.safeParse(row.source);
  if (parsed.success) return parsed.data;
  throw new Error(
    `meta model "${row.name}": its source column does not fit: ${z.prettifyError(parsed.error)}`,
  );
}

/** A value for `MetaModel.source`, checked against the schema on the way in too. */
export function metaModelSourceJson(source: MetaModelSource): Prisma.InputJsonValue {
  return metaModelSourceSchema.parse(source);
}

type WithoutSelection<T> = T extends unknown ? Omit<T, "split" | "shard"> : never;

/** A registered dataset's spec without the split and shard, which each job chooses. */
export type DatasetOptions = WithoutSelection<ParsedDatasetSpec>;

/** `Dataset.options`, parsed (throws a DataError naming the dataset and the bad fields). */
export function readDatasetOptions(dataset: Pick<Dataset, "name" | "options">): DatasetOptions {
  const { split: _split, shard: _shard, ...options } = datasetSpecOf(dataset, {});
  return options;
}

/** The full spec of one split (and shard) of a registered dataset. */
export function datasetSpecOf(
  dataset: Pick<Dataset, "name" | "options">,
  selection: { split?: "train" | "test"; shard?: { count: number; index: number; seed?: number } },
): ParsedDatasetSpec {
  const options = dataset.options;
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw new DataError(`dataset "${dataset.name}": its options are not a JSON object`, {
      source: "dataset spec",
    });
  try {
    return parseDatasetSpec({ ...options, ...selection });
  } catch (error) {
    if (error instanceof DataError)
      throw new DataError(`dataset "${dataset.name}": ${error.message}`, { cause: error });
    throw error;
  }
}
