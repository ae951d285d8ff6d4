/**
 * What a job spec asks a job to produce besides its weights: fine-tuning assembles its starting
 * point from the modules' weights (`assembleFrom`), and whole-model jobs export their final
 * weights as ONNX (`exportOnnx`). Real files, real ONNX Runtime sessions.
 */
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { loadWeights, saveWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import { compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { assembleTarget } from "../../src/incubation/assemble.ts";
import { JobFailedError, type JobSpec, runJob } from "../../src/incubation/job.ts";
import { moduleParamSpecs } from "../../src/incubation/modules.ts";
import { resolveRecipe } from "../../src/incubation/recipe.ts";
import { SMALL_SPLIT, SMALL_TARGET } from "../helpers/incubation.ts";
import { tinyOverrides } from "../helpers/tiny-run.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("job-outputs");
const TARGET = SMALL_TARGET;
const DATA = { format: "synthetic", numClasses: 5, channels: 3, imageSize: 8, seed: 4, length: 64 } as const;

const spec = (outDir: string, phase: JobSpec["phase"], extra: Partial<JobSpec> = {}): JobSpec => ({
  phase,
  target: TARGET,
  split: SMALL_SPLIT,
  dataset: { ...DATA, split: "train" },
  recipe: resolveRecipe("deit", tinyOverrides({ pretrain: 2, modular: 2, finetune: 3, e2e: 3 })),
  seed: 7,
  outDir: join(dir, outDir),
  threads: 1,
  ...extra,
});

/** Module i's weights as an MT job leaves them: only the tensors module i owns, random values. */
function moduleFiles(): { moduleIndex: number; weights: string }[] {
  const rng = new Rng(5);
  return SMALL_SPLIT.map((_, i) => {
    const shapes = moduleParamSpecs(TARGET, SMALL_SPLIT, i);
    const parameters = new Map(
      shapes.map((s) => {
        const size = s.shape.reduce((a, b) => a * b, 1);
        return [s.name, Float32Array.from({ length: size }, () => 0.05 * rng.normal())] as const;
      }),
    );
    const weights = join(dir, `module-${i}.safetensors`);
    saveWeights(weights, { parameters, shapes }, { metadata: { phase: "modular", moduleIndex: String(i) } });
    return { moduleIndex: i, weights };
  });
}

const bitwiseEqual = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The largest difference between the exported model's logits and the engine's eval graph on the same weights. */
async function onnxVersusEngine(onnxPath: string, cfg: VitConfig, weightsPath: string): Promise<number> {
  const n = 3;
  const rng = new Rng(9);
  const x = Float32Array.from({ length: n * cfg.channels * cfg.imageSize ** 2 }, () => rng.normal());
  const session = await ort.InferenceSession.create(onnxPath, { intraOpNumThreads: 1 });
  const exported = (await session.run({ images: new ort.Tensor("float32", x, [n, 3, 8, 8]) })).logits!
    .data as Float32Array;
  await session.release();
  const trainer = await Trainer.create(
    compileTrainer(vitClassifierSpec(cfg, { batch: n, optimizer: { kind: "adamw" } })),
    { initial: loadWeights(weightsPath, { expect: vitParamSpecs(cfg) }), intraOpNumThreads: 1 },
  );
  const engine = (
    await trainer.evaluate({
      images: { dtype: "float32", shape: [n, 3, 8, 8], data: x },
      labels: { dtype: "int64", shape: [n], data: new BigInt64Array(n) },
    })
  ).outputs.logits!.data as Float32Array;
  await trainer.release();
  expect(exported.length).toBe(n * cfg.numClasses);
  return Math.max(...exported.map((v, i) => Math.abs(v - engine[i]!)));
}

describe("a fine-tuning job given the modules' weights", () => {
  it("assembles the target (as assembleTarget does), starts from it, reports it, and exports the trained model", async () => {
    const modules = moduleFiles();
    const ft = await runJob(spec("ft", "finetune", { assembleFrom: modules, exportOnnx: true }));

    expect(ft.assembled).toMatchObject({
      path: join(dir, "ft", "assembled.safetensors"),
      modules: [0, 1, 2, 3],
    });
    expect(ft.assembled!.wallSeconds).toBeGreaterThan(0);
    expect(ft.assembled!.wallSeconds).toBeLessThan(ft.wallSeconds);
    const expected = assembleTarget(
      TARGET,
      SMALL_SPLIT,
      modules.map((m) => ({ moduleIndex: m.moduleIndex, parameters: loadWeights(m.weights) })),
    ).parameters;
    const written = loadWeights(ft.assembled!.path, { expect: vitParamSpecs(TARGET) });
    expect([...written.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [name, value] of expected) expect(bitwiseEqual(written.get(name)!, value), name).toBe(true);

    // The assembled file is the starting point: the same job given it as initWeights ends identically.
    const given = await runJob(spec("ft-given", "finetune", { initWeights: ft.assembled!.path }));
    expect(given.assembled).toBeUndefined();
    expect(given.onnxPath).toBeUndefined();
    expect(given.finalLoss).toBe(ft.finalLoss);
    const a = loadWeights(ft.weightsPath);
    const b = loadWeights(given.weightsPath);
    for (const [name, value] of a) expect(bitwiseEqual(b.get(name)!, value), name).toBe(true);

    // model.onnx holds the trained weights, not the assembled ones.
    expect(ft.onnxPath).toBe(join(dir, "ft", "model.onnx"));
    expect(await onnxVersusEngine(ft.onnxPath!, TARGET, ft.weightsPath)).toBeLessThan(1e-5);
    expect(await onnxVersusEngine(ft.onnxPath!, TARGET, ft.assembled!.path)).toBeGreaterThan(1e-3);
  }, 120_000);

  it("refuses, before training, outputs its phase cannot give", async () => {
    const modules = moduleFiles();
    await expect(runJob(spec("bad-1", "e2e", { assembleFrom: modules }))).rejects.toThrow(
      /assembleFrom: only fine-tuning/,
    );
    await expect(
      runJob(spec("bad-2", "finetune", { assembleFrom: modules, initWeights: modules[0]!.weights })),
    ).rejects.toThrow(JobFailedError);
    await expect(
      runJob(spec("bad-3", "modular", { moduleIndex: 0, metaWeights: "x", exportOnnx: true })),
    ).rejects.toThrow(/exportOnnx: a modular job's weights are one module/);
    await expect(runJob(spec("bad-4", "finetune", { assembleFrom: modules.slice(1) }))).rejects.toThrow(
      /assembleFrom: cannot assemble: no result for module 0 of 4/,
    );
  });
});

describe("an E2E job with exportOnnx", () => {
  it("writes model.onnx with its final weights", async () => {
    const e2e = await runJob(spec("e2e", "e2e", { exportOnnx: true }));
    expect(e2e.onnxPath).toBe(join(dir, "e2e", "model.onnx"));
    expect(await onnxVersusEngine(e2e.onnxPath!, TARGET, e2e.weightsPath)).toBeLessThan(1e-5);
  }, 60_000);
});
