/**
 * Pre-trained ViTs as meta models: a checkpoint written in timm's layout (safetensors, or ONNX
 * through our own exporter) is read, K of its blocks become the meta stages bit for bit, bad
 * sources are refused with messages that say what is wrong, and the derived meta model trains
 * a target module in a real modular-training job.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { openSafetensors } from "../../src/engine/checkpoint/safetensors.ts";
import { exportVitOnnx } from "../../src/engine/export/onnx-export.ts";
import { vitParamSpecs } from "../../src/engine/models/vit.ts";
import { onnx } from "../../src/engine/onnx/proto.ts";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { runJob } from "../../src/incubation/job.ts";
import {
  chooseMetaBlocks,
  evenlySpacedBlocks,
  type ImportOptions,
  importPretrainedMeta,
  PretrainedImportError,
  SOURCE_METADATA_KEY,
} from "../../src/incubation/pretrained.ts";
import { SOURCE_VIT, type TimmTensor, timmVitTensors, writeTimmCheckpoint } from "../helpers/timm-vit.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("pretrained");
const SOURCE = timmVitTensors();
const sourcePath = writeTimmCheckpoint(join(dir, "vit-src.safetensors"), SOURCE);
let outs = 0;
const out = () => join(dir, `meta-${outs++}.safetensors`);

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Every meta tensor is the source tensor it claims to be, bit for bit. */
function expectCopied(meta: Map<string, Float32Array>, blocks: number[], source = SOURCE): void {
  for (const [name, value] of meta) {
    const from = name.replace(/^blocks\.(\d+)\./, (_, j) => `blocks.${blocks[Number(j)]}.`);
    expect(bytes(value).equals(bytes(source.get(from)!.data)), `${name} ← ${from}`).toBe(true);
  }
}

/** The PretrainedImportError `run` throws, for its field and exact message. */
async function refusal(opts: Partial<ImportOptions>) {
  try {
    await importPretrainedMeta({ path: sourcePath, heads: 4, modules: 4, out: out(), ...opts });
  } catch (error) {
    expect(error).toBeInstanceOf(PretrainedImportError);
    const e = error as PretrainedImportError;
    return { field: e.field, message: e.message };
  }
  throw new Error("the import was expected to fail");
}

function withTensors(edit: (t: Map<string, TimmTensor>) => void, name: string): string {
  const tensors = new Map(SOURCE);
  edit(tensors);
  return writeTimmCheckpoint(join(dir, name), tensors);
}

describe("choosing the meta blocks", () => {
  it("keeps the first and last block and spaces the rest evenly: round(linspace(0, D−1, K))", () => {
    expect(evenlySpacedBlocks(12, 4)).toEqual([0, 4, 7, 11]);
    expect(evenlySpacedBlocks(6, 4)).toEqual([0, 2, 3, 5]);
    expect(evenlySpacedBlocks(6, 3)).toEqual([0, 3, 5]); // 2.5 rounds up
    expect(evenlySpacedBlocks(6, 6)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(evenlySpacedBlocks(24, 4)).toEqual([0, 8, 15, 23]);
    expect(evenlySpacedBlocks(6, 1)).toEqual([0]);
    expect(chooseMetaBlocks(6, 4, [1, 2, 4, 5])).toEqual([1, 2, 4, 5]);
  });
});

describe("importing a timm ViT from safetensors", () => {
  it("copies K evenly spaced blocks, embeddings, norm and head bit for bit and records the source", async () => {
    const path = out();
    const result = await importPretrainedMeta({ path: sourcePath, heads: 4, modules: 4, out: path });
    expect(result.sourceConfig).toEqual(SOURCE_VIT);
    expect(result.config).toEqual({ ...SOURCE_VIT, depth: 4 });
    const meta = loadWeights(path, { expect: vitParamSpecs(result.config) });
    expectCopied(meta, [0, 2, 3, 5]);
    expect(result.source).toEqual({
      format: "safetensors",
      fileName: "vit-src.safetensors",
      sha256: sha256(sourcePath),
      strippedPrefix: "",
      depth: 6,
      blocks: [0, 2, 3, 5],
      heads: 4,
      sourceNumClasses: 10,
      headReset: false,
    });
    // The file carries where it came from.
    const file = openSafetensors(path);
    expect(JSON.parse(file.metadata[SOURCE_METADATA_KEY]!)).toEqual(result.source);
    file.close();
  });

  it("takes explicit blocks, and strips a module./model. wrapper prefix carried by every name", async () => {
    const wrapped = writeTimmCheckpoint(join(dir, "ddp.safetensors"), SOURCE, "model.module.");
    const path = out();
    const result = await importPretrainedMeta({
      path: wrapped,
      heads: 4,
      modules: 3,
      blocks: [1, 2, 4],
      out: path,
    });
    expect(result.source).toMatchObject({ strippedPrefix: "model.module.", blocks: [1, 2, 4] });
    expectCopied(loadWeights(path, { expect: vitParamSpecs(result.config) }), [1, 2, 4]);
  });

  it("gives the meta model a zero head for other classes, also when the source has no head", async () => {
    const path = out();
    const reset = await importPretrainedMeta({
      path: sourcePath,
      heads: 4,
      modules: 2,
      numClasses: 5,
      out: path,
    });
    expect(reset.config.numClasses).toBe(5);
    expect(reset.source).toMatchObject({ sourceNumClasses: 10, headReset: true, blocks: [0, 5] });
    const meta = loadWeights(path, { expect: vitParamSpecs(reset.config) });
    expect(meta.get("head.weight")!.every((x) => x === 0)).toBe(true);
    expect(meta.get("head.bias")!.every((x) => x === 0)).toBe(true);
    meta.delete("head.weight");
    meta.delete("head.bias");
    expectCopied(meta, [0, 5]);

    const headless = withTensors((t) => {
      t.delete("head.weight");
      t.delete("head.bias");
    }, "headless.safetensors");
    const fromHeadless = await importPretrainedMeta({
      path: headless,
      heads: 4,
      modules: 2,
      numClasses: 3,
      out: out(),
    });
    expect(fromHeadless.source).toMatchObject({ sourceNumClasses: null, headReset: true });
    expect(fromHeadless.config.numClasses).toBe(3);
    expect(await refusal({ path: headless })).toEqual({
      field: "numClasses",
      message:
        'headless.safetensors has no head ("head.weight"; a feature extractor saved with num_classes=0?): pass numClasses to give the meta model a fresh zero head',
    });
  });
});

describe("importing a timm ViT from ONNX", () => {
  const values = new Map([...SOURCE].map(([name, t]) => [name, t.data]));

  it("reads initializers inline and from external data files, equal to the safetensors import", async () => {
    const fromSafetensors = loadWeights(
      (await importPretrainedMeta({ path: sourcePath, heads: 4, modules: 4, out: out() })).saved.path,
    );
    for (const [name, opts] of [
      ["inline.onnx", {}],
      ["external.onnx", { externalDataThreshold: 0 }],
    ] as const) {
      const exported = exportVitOnnx(join(dir, name), SOURCE_VIT, values, opts);
      expect(exported.externalFiles.length).toBe(name === "external.onnx" ? 1 : 0);
      const result = await importPretrainedMeta({ path: exported.path, heads: 4, modules: 4, out: out() });
      expect(result.source).toMatchObject({ format: "onnx", fileName: name, sha256: sha256(exported.path) });
      if (name === "external.onnx")
        expect(result.source.externalData).toEqual([
          { fileName: "external.onnx.data", sha256: sha256(exported.externalFiles[0]!.path) },
        ]);
      const meta = loadWeights(result.saved.path, { expect: vitParamSpecs(result.config) });
      expect([...meta.keys()].sort()).toEqual([...fromSafetensors.keys()].sort());
      for (const [k, v] of meta) expect(bytes(v).equals(bytes(fromSafetensors.get(k)!)), k).toBe(true);
    }
  });

  it("reads float_data initializers and ignores graph constants (non-float or not named like a parameter)", async () => {
    // pos_embed as DOUBLE (double_data), the rest as FLOAT (float_data): both read exactly.
    const initializer = [...SOURCE].map(([name, t]) =>
      name === "pos_embed"
        ? { name, dataType: 11, dims: t.shape, doubleData: [...t.data] }
        : { name, dataType: 1, dims: t.shape, floatData: [...t.data] },
    );
    initializer.push({ name: "shape_const", dataType: 7, dims: [2], floatData: [] });
    initializer.push({ name: "onnx::Mul_12", dataType: 1, dims: [], floatData: [0.5] });
    const path = join(dir, "float-data.onnx");
    writeFileSync(
      path,
      onnx.ModelProto.encode({
        irVersion: 8,
        opsetImport: [{ version: 17 }],
        graph: { name: "g", initializer },
      }).finish(),
    );
    const result = await importPretrainedMeta({ path, heads: 4, modules: 4, out: out() });
    expectCopied(loadWeights(result.saved.path, { expect: vitParamSpecs(result.config) }), [0, 2, 3, 5]);
  });

  it("refuses external data outside the model's directory", async () => {
    const path = join(dir, "escape.onnx");
    const initializer = [...SOURCE].map(([name, t]) => ({
      name,
      dataType: 1,
      dims: t.shape,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [{ key: "location", value: "../elsewhere.bin" }],
    }));
    writeFileSync(path, onnx.ModelProto.encode({ irVersion: 8, graph: { name: "g", initializer } }).finish());
    const { field, message } = await refusal({ path });
    expect(field).toBe("path");
    expect(message).toMatch(/external data location "\.\.\/elsewhere\.bin" is not a file next to the model$/);
  });
});

describe("refusals say what is wrong and how to fix it", () => {
  const FIX =
    "Import a plain timm VisionTransformer (class token, pre-norm blocks, timm names); tensors of other variants are refused rather than dropped, since dropping them would change what the model computes.";

  it("a missing tensor, a wrong shape, a distilled DeiT's extra tensors", async () => {
    const missing = withTensors((t) => t.delete("blocks.3.mlp.fc2.bias"), "missing.safetensors");
    expect(await refusal({ path: missing })).toEqual({
      field: "path",
      message: `missing.safetensors: not a plain ViT with timm names — missing "blocks.3.mlp.fc2.bias" (expected [32]). ${FIX}`,
    });
    const wrong = withTensors(
      (t) => t.set("blocks.2.attn.proj.weight", { data: new Float32Array(32 * 16), shape: [32, 16] }),
      "wrong-shape.safetensors",
    );
    expect(await refusal({ path: wrong })).toEqual({
      field: "path",
      message: `wrong-shape.safetensors: not a plain ViT with timm names — "blocks.2.attn.proj.weight": file has [32, 16], expected [32, 32]. ${FIX}`,
    });
    const distilled = withTensors((t) => {
      t.set("dist_token", { data: new Float32Array(32), shape: [1, 1, 32] });
      t.set("head_dist.weight", { data: new Float32Array(320), shape: [10, 32] });
    }, "distilled.safetensors");
    expect(await refusal({ path: distilled })).toEqual({
      field: "path",
      message: `distilled.safetensors: not a plain ViT with timm names — unexpected "dist_token" [1, 1, 32]; unexpected "head_dist.weight" [10, 32] (dist_token/head_dist belong to a distilled DeiT, whose distillation token also holds a place in pos_embed). ${FIX}`,
    });
  });

  it("K beyond the depth, bad block lists, heads that do not divide the width, unknown formats", async () => {
    expect(await refusal({ modules: 7 })).toEqual({
      field: "modules",
      message: "modules (7) cannot exceed the source model's depth (6): each meta stage is one source block",
    });
    expect(await refusal({ blocks: [0, 2, 2, 5] })).toEqual({
      field: "blocks",
      message: "blocks[2] (2) repeats blocks[1]: each meta stage needs its own block",
    });
    expect(await refusal({ blocks: [0, 3, 2, 5] })).toEqual({
      field: "blocks",
      message:
        "blocks must increase: blocks[2] (2) comes after blocks[1] (3); list them in the source's order, which the meta stages keep",
    });
    expect(await refusal({ blocks: [0, 2, 3, 6] })).toEqual({
      field: "blocks",
      message: "blocks[3] must be a block of the source, 0…5, got 6",
    });
    expect(await refusal({ blocks: [0, 5] })).toEqual({
      field: "blocks",
      message: "blocks must list 4 block indices (one per module), got 2",
    });
    expect(await refusal({ heads: 3 })).toEqual({
      field: "heads",
      message: "width (32) must be divisible by heads (3)",
    });
    expect(await refusal({ path: join(dir, "weights.bin") })).toEqual({
      field: "format",
      message:
        'cannot tell the format of "weights.bin" from its extension; name it .safetensors or .onnx, or pass the format (safetensors or onnx)',
    });
    expect(await refusal({ path: join(dir, "absent.safetensors") })).toEqual({
      field: "path",
      message: `${join(dir, "absent.safetensors")}: no such file`,
    });
  });
});

describe("a derived meta model incubates a target module", () => {
  it("runs modular training of module 0 inside the imported meta model", async () => {
    const meta = await importPretrainedMeta({ path: sourcePath, heads: 4, modules: 4, out: out() });
    const config = loadRunConfig("demo", ["recipe.batchSize=8", "recipe.steps.modular=3"]);
    const target = { ...meta.config, depth: 8 };
    const split = [2, 2, 2, 2];
    const result = await runJob({
      phase: "modular",
      target,
      split,
      moduleIndex: 0,
      dataset: config.dataset,
      recipe: config.recipe,
      seed: 1,
      outDir: join(dir, "mt-0"),
      metaWeights: meta.saved.path,
      threads: 1,
    });
    expect(result.steps).toBe(3);
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    // Module 0's weights: the embeddings and its two blocks, nothing of the meta model.
    const names = [...loadWeights(result.weightsPath).keys()];
    expect(names).toContain("pos_embed");
    expect(names.every((n) => !n.startsWith("meta.") && !/^blocks\.[2-7]\./.test(n))).toBe(true);
  }, 120_000);
});
