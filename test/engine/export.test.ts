/**
 * ONNX inference export: a trained tiny ViT written as a plain ONNX model (initializers under
 * timm names, symbolic batch, opset 17, standard ops only) must load in a fresh
 * ort.InferenceSession from its path and give the engine's eval-graph logits to 1e-5 at batch
 * sizes other than the training batch — inline and with external-data side files.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { beforeAll, describe, expect, it } from "vitest";
import { exportVitOnnx, externalDataFor, OnnxExportError } from "../../src/engine/export/onnx-export.ts";
import { dropMaskShape, dropPathMasks, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { onnx } from "../../src/engine/onnx/proto.ts";
import { Rng } from "../../src/engine/rng.ts";
import { compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { useTempDir } from "../helpers/tmp.ts";
import { tinyVit } from "./models.ts";

const dir = useTempDir("export");

const CFG: VitConfig = tinyVit({ dropPathRate: 0.1 });
const TRAIN_BATCH = 8;
const SESSION = { intraOpNumThreads: 2 };

function images(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n * CFG.channels * CFG.imageSize ** 2 }, () => r.normal());
}

/** Logits of the engine's own eval graph (static batch n) for the given parameters. */
async function engineLogits(
  params: Map<string, Float32Array>,
  x: Float32Array,
  n: number,
): Promise<Float32Array> {
  const spec = vitClassifierSpec(CFG, { batch: n, optimizer: { kind: "adamw" } });
  const t = await Trainer.create(compileTrainer(spec), { initial: params, ...SESSION });
  const out = await t.evaluate({
    images: { dtype: "float32", shape: [n, CFG.channels, CFG.imageSize, CFG.imageSize], data: x },
    labels: { dtype: "int64", shape: [n], data: new BigInt64Array(n) },
  });
  await t.release();
  return out.outputs.logits!.data as Float32Array;
}

async function onnxLogits(session: ort.InferenceSession, x: Float32Array, n: number): Promise<Float32Array> {
  const out = await session.run({
    images: new ort.Tensor("float32", x, [n, CFG.channels, CFG.imageSize, CFG.imageSize]),
  });
  expect(out.logits!.dims).toEqual([n, CFG.numClasses]);
  return out.logits!.data as Float32Array;
}

/** Bytes as float32 (copied: decoded protobuf fields and file reads may be unaligned Buffer views). */
const floats = (bytes: Uint8Array) => new Float32Array(Uint8Array.from(bytes).buffer);

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe("ONNX inference export of a trained ViT", () => {
  let params: Map<string, Float32Array>;

  beforeAll(async () => {
    const spec = vitClassifierSpec(CFG, {
      batch: TRAIN_BATCH,
      optimizer: { kind: "adamw" },
      labelSmoothing: 0.1,
    });
    const trainer = await Trainer.create(compileTrainer(spec, { eval: false }), { seed: 3, ...SESSION });
    const rng = new Rng(11);
    for (let step = 0; step < 6; step++) {
      await trainer.trainStep(
        {
          images: { dtype: "float32", shape: [TRAIN_BATCH, 3, 8, 8], data: images(TRAIN_BATCH, 100 + step) },
          labels: {
            dtype: "int64",
            shape: [TRAIN_BATCH],
            data: BigInt64Array.from({ length: TRAIN_BATCH }, () => BigInt(rng.int(CFG.numClasses))),
          },
          drop_mask: {
            dtype: "float32",
            shape: dropMaskShape(CFG.depth, TRAIN_BATCH),
            data: dropPathMasks(rng, CFG.dropPathRate, CFG.depth, TRAIN_BATCH),
          },
        },
        5e-3,
      );
    }
    params = trainer.parameters();
    await trainer.release();
  });

  it("inline: initializers with timm names, symbolic batch, opset 17, standard ops; logits match the engine", async () => {
    const path = join(dir, "vit.onnx");
    const result = exportVitOnnx(path, CFG, params);
    expect(result.externalFiles).toEqual([]);
    expect(result.unusedParams).toEqual([]);

    const model = onnx.ModelProto.decode(readFileSync(path));
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([["", 17]]);
    const g = model.graph as onnxProto.onnx.GraphProto;
    expect(g.input.map((i) => i.name)).toEqual(["images"]);
    expect(g.input[0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue))).toEqual([
      "batch",
      3,
      8,
      8,
    ]);
    expect(g.output.map((o) => o.name)).toEqual(["logits"]);
    const inits = new Map(g.initializer.map((t) => [t.name!, t]));
    for (const p of vitParamSpecs(CFG)) {
      expect(inits.get(p.name)?.dims?.map(Number), p.name).toEqual(p.shape);
      const raw = inits.get(p.name)!.rawData!;
      expect(floats(raw)).toEqual(params.get(p.name));
    }
    expect(g.node.some((n) => n.opType === "Constant")).toBe(false);
    expect(g.node.every((n) => !n.domain)).toBe(true);
    // each LayerNorm applies timm's own scale and shift, as timm's graph does (no weight products)
    const norms = g.node.filter((n) => n.opType === "LayerNormalization");
    expect(norms.length).toBe(2 * CFG.depth + 1);
    for (const n of norms) expect(n.input?.[1]).toMatch(/norm[12]?\.weight$/);
    expect(result.modelBytes).toBe(statSync(path).size);

    // A fresh session from the file path, at batch sizes the training never used.
    const session = await ort.InferenceSession.create(path, SESSION);
    for (const n of [5, 1, 13]) {
      const x = images(n, 1000 + n);
      expect(
        maxAbsDiff(await onnxLogits(session, x, n), await engineLogits(params, x, n)),
      ).toBeLessThanOrEqual(1e-5);
    }
    await session.release();
  });

  it("external data: side files next to the model, aligned offsets, loadable from the path and from buffers", async () => {
    const path = join(dir, "vit-ext.onnx");
    // Thresholds lowered so a 50 kB model exercises what a > 2 GB one does by default.
    const result = exportVitOnnx(path, CFG, params, {
      externalDataThreshold: 0,
      maxExternalFileBytes: 24 * 1024,
    });
    expect(result.externalFiles.length).toBeGreaterThan(1);
    expect(result.externalFiles.map((f) => f.path)).toEqual(
      result.externalFiles.map((_, i) => join(dir, i === 0 ? "vit-ext.onnx.data" : `vit-ext.onnx.data.${i}`)),
    );
    for (const f of result.externalFiles) expect(statSync(f.path).size).toBe(f.bytes);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);

    const model = onnx.ModelProto.decode(readFileSync(path));
    let externalBytes = 0;
    for (const t of (model.graph as onnxProto.onnx.GraphProto).initializer as onnxProto.onnx.TensorProto[]) {
      if (t.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) {
        expect(t.rawData!.length, t.name!).toBeLessThan(1024); // small tensors stay inline
        continue;
      }
      const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
      expect(kv.location).toMatch(/^vit-ext\.onnx\.data(\.\d+)?$/); // relative to the model
      expect(Number(kv.offset) % 4096).toBe(0);
      const side = readFileSync(join(dir, kv.location!));
      const bytes = side.subarray(Number(kv.offset), Number(kv.offset) + Number(kv.length));
      expect(floats(bytes)).toEqual(params.get(t.name!));
      externalBytes += Number(kv.length);
    }
    expect(externalBytes).toBeGreaterThan(0.9 * result.weightBytes);
    expect(result.modelBytes).toBeLessThan(externalBytes / 2);

    const n = 7;
    const x = images(n, 77);
    const reference = await engineLogits(params, x, n);
    const fromPath = await ort.InferenceSession.create(path, SESSION);
    const a = await onnxLogits(fromPath, x, n);
    expect(maxAbsDiff(a, reference)).toBeLessThanOrEqual(1e-5);
    await fromPath.release();

    const fromBuffer = await ort.InferenceSession.create(readFileSync(path), {
      ...SESSION,
      externalData: externalDataFor(result),
    });
    expect(await onnxLogits(fromBuffer, x, n)).toEqual(a);
    await fromBuffer.release();

    // Re-exporting inline to the same name leaves no stale shard beyond the first.
    exportVitOnnx(path, CFG, params);
    expect(readdirSync(dir).filter((f) => /^vit-ext\.onnx\.data\.\d+$/.test(f))).toEqual([]);
  });

  it("refuses values that do not fit, naming the tensor", () => {
    const path = join(dir, "bad.onnx");
    const missing = new Map(params);
    missing.delete("blocks.1.mlp.fc2.weight");
    expect(() => exportVitOnnx(path, CFG, missing)).toThrow(
      /bad\.onnx: .*missing value for "blocks\.1\.mlp\.fc2\.weight" \[32, 64\]/,
    );
    const wrong = new Map(params);
    wrong.set("head.weight", new Float32Array(7 * 32));
    expect(() => exportVitOnnx(path, CFG, wrong)).toThrow(
      /"head\.weight": 224 values, shape \[5, 32\] needs 160/,
    );
    const withState = new Map(params);
    withState.set("optimizer.exp_avg.head.bias", new Float32Array(5));
    expect(() => exportVitOnnx(path, CFG, withState)).toThrow(OnnxExportError);
    expect(() => exportVitOnnx(path, CFG, withState)).toThrow(
      /optimizer\.exp_avg\.head\.bias.*not a checkpoint with optimizer state/,
    );
    const diverged = new Map(params);
    diverged.set("norm.bias", Float32Array.of(0, Number.NaN, 0, 0, ...new Array(28).fill(0)));
    expect(() => exportVitOnnx(path, CFG, diverged)).toThrow(/"norm\.bias" holds NaN at index 1/);
    expect(() => exportVitOnnx(join(dir, "no", "such", "m.onnx"), CFG, params)).toThrow(
      /does not exist; create it first/,
    );
  });
});
