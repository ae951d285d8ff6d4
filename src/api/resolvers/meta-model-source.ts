/** MetaModelSource's fields: where a meta model came from (src/platform/meta-model-source.ts). */
import type { MetaModelSourceResolvers, WeightsFormat } from "../../generated/graphql.ts";
import type { PretrainedFormat } from "../../incubation/pretrained.ts";
import type { MetaModelSource } from "../../platform/meta-model-source.ts";

const ORIGIN = { "pretrain-run": "PRETRAIN_RUN", registered: "REGISTERED", imported: "IMPORTED" } as const;
const FORMAT = { safetensors: "SAFETENSORS", onnx: "ONNX" } as const satisfies Record<
  PretrainedFormat,
  WeightsFormat
>;

/** An IMPORTED-only field of MetaModelSource: null for the other origins. */
const importedOnly =
  <T>(read: (s: Extract<MetaModelSource, { kind: "imported" }>) => T) =>
  (s: MetaModelSource): T | null =>
    s.kind === "imported" ? read(s) : null;

export const metaModelSourceFields: MetaModelSourceResolvers = {
  origin: (s) => ORIGIN[s.kind],
  run: (s, _, ctx) => (s.kind === "pretrain-run" ? ctx.loaders.run.load(s.runId) : null),
  file: (s) => (s.kind === "pretrain-run" ? null : { fileName: s.fileName, sha256: s.sha256 }),
  format: (s) => (s.kind === "imported" ? FORMAT[s.format] : s.kind === "registered" ? "SAFETENSORS" : null),
  externalData: importedOnly((s) => s.externalData ?? []),
  strippedPrefix: importedOnly((s) => s.strippedPrefix),
  sourceDepth: importedOnly((s) => s.depth),
  blocks: importedOnly((s) => s.blocks),
  sourceNumClasses: importedOnly((s) => s.sourceNumClasses),
  headReset: importedOnly((s) => s.headReset),
};
