/**
 * Width adapters: a meta model of width d_m incubating a target of width d_t ≠ d_m.
 *
 * What is checked: the adapters' shapes and placement (none before module 0, none after module
 * K−1), that the hybrid starts at the meta model's function (stated tolerance below), that
 * gradients reach the adapters and module i but not the meta model, and that assembly — and
 * the module's saved weights — carry no adapter tensors.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadWeights, saveWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { INPUT, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";
import type { ParamSpec } from "../../src/engine/train/params.ts";
import { type Batch, compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { assembleTarget } from "../../src/incubation/assemble.ts";
import {
  buildHybrid,
  type Hybrid,
  hybridInitialValues,
  metaIncompatibility,
  widthAdapters,
} from "../../src/incubation/hybrid.ts";
import { runJob } from "../../src/incubation/job.ts";
import { metaConfigFor, moduleParamSpecs } from "../../src/incubation/modules.ts";
import { resolveRecipe } from "../../src/incubation/recipe.ts";
import { SMALL_SPLIT, SMALL_TARGET } from "../helpers/incubation.ts";

const TARGET = SMALL_TARGET;
const SPLIT = SMALL_SPLIT;
const K = SPLIT.length;
const NARROW = metaConfigFor(TARGET, K, { width: 8 });
const WIDE = metaConfigFor(TARGET, K, { width: 24 });

const randomValues = (specs: readonly ParamSpec[], seed: number, std = 0.2) => {
  const rng = new Rng(seed);
  return new Map(
    specs.map((s) => [
      s.name,
      new Float32Array(s.shape.reduce((a, b) => a * b, 1)).map(() => rng.normal() * std),
    ]),
  );
};

const BATCH = 4;
const images = () => {
  const rng = new Rng(11);
  return f32(
    [BATCH, 3, 8, 8],
    new Float32Array(BATCH * 192).map(() => rng.normal()),
  );
};
const labels = { dtype: "int64" as const, shape: [BATCH], data: BigInt64Array.from([0n, 1n, 2n, 3n]) };

/** Logits of a classifier (params, plan) at the given parameter values, via the eval graph. */
async function logits(
  cfg: VitConfig,
  opts: { params: ParamSpec[]; plan?: ReturnType<typeof buildHybrid>["plan"] },
  values: Map<string, Float32Array>,
): Promise<Float32Array> {
  const spec = vitClassifierSpec(cfg, { batch: BATCH, optimizer: { kind: "sgd", momentum: 0 }, ...opts });
  const trainer = await Trainer.create(compileTrainer(spec, { eval: true }), { seed: 3, initial: values });
  try {
    const out = await trainer.evaluate({ [INPUT.images]: images(), [INPUT.labels]: labels });
    return out.outputs.logits!.data as Float32Array;
  } finally {
    await trainer.release();
  }
}

/** A hybrid's parameters as training would start them: meta values, then each spec's own init. */
async function initialValues(
  h: Hybrid,
  meta: Map<string, Float32Array>,
  cfg: VitConfig = TARGET,
): Promise<Map<string, Float32Array>> {
  const spec = vitClassifierSpec(cfg, { batch: BATCH, optimizer: { kind: "sgd" }, ...h });
  const trainer = await Trainer.create(compileTrainer(spec, { eval: false }), {
    seed: 9,
    initial: hybridInitialValues(h, meta),
  });
  const values = trainer.parameters();
  await trainer.release();
  return values;
}

/**
 * Zero the target blocks' residual branches (attention and MLP outputs), so module i's blocks
 * are the identity. Meta tensors (`meta.…`) are left alone — and never written: they are shared.
 */
function identityBlocks(values: Map<string, Float32Array>) {
  for (const [name, value] of values) {
    if (!name.startsWith("meta.") && /\.(attn\.proj|mlp\.fc2)\.(weight|bias)$/.test(name)) {
      values.set(name, new Float32Array(value.length));
    }
  }
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe("width adapters: shapes and placement", () => {
  it("wraps module i in d_m→d_t before and d_t→d_m after, except at the ends", () => {
    const names = (i: number) => widthAdapters(TARGET, NARROW, K, i).map((a) => a.name);
    expect(names(0)).toEqual(["adapters.out"]);
    expect(names(1)).toEqual(["adapters.in", "adapters.out"]);
    expect(names(3)).toEqual(["adapters.in"]);
    expect(widthAdapters(TARGET, metaConfigFor(TARGET, K), K, 1)).toEqual([]);

    const h1 = buildHybrid(TARGET, NARROW, SPLIT, 1);
    const shape = (name: string) => h1.params.find((p) => p.name === name)?.shape;
    expect(shape("adapters.in.weight")).toEqual([16, 8]);
    expect(shape("adapters.in.bias")).toEqual([16]);
    expect(shape("adapters.out.weight")).toEqual([8, 16]);
    expect(shape("adapters.out.bias")).toEqual([8]);
    expect(shape("meta.blocks.0.mlp.fc1.weight")).toEqual([32, 8]);
    expect(shape("blocks.2.mlp.fc1.weight")).toEqual([64, 16]);
    const trainable = h1.params.filter((p) => p.trainable !== false).map((p) => p.name);
    expect(trainable).toEqual([
      ...moduleParamSpecs(TARGET, SPLIT, 1).map((p) => p.name),
      "adapters.in.weight",
      "adapters.in.bias",
      "adapters.out.weight",
      "adapters.out.bias",
    ]);
    expect(h1.plan.widths?.adapters).toEqual([
      { name: "adapters.in", before: 1 },
      { name: "adapters.out", before: 2 },
    ]);
    expect(h1.plan.widths?.blocks.map((c) => c.width)).toEqual([8, 16, 8, 8]);

    // The other direction: a wider meta model.
    const wide = buildHybrid(TARGET, WIDE, SPLIT, 2);
    expect(wide.params.find((p) => p.name === "adapters.in.weight")?.shape).toEqual([16, 24]);
    expect(wide.params.find((p) => p.name === "adapters.out.weight")?.shape).toEqual([24, 16]);
  });

  it("still refuses a meta model whose heads, patch or depth differ, saying what differs", () => {
    expect(metaIncompatibility(TARGET, NARROW, K)).toEqual([]);
    expect(metaIncompatibility(TARGET, { ...NARROW, heads: 4 }, K)).toEqual([
      "meta model heads (4) differs from the target's (2)",
    ]);
    expect(() => buildHybrid(TARGET, { ...NARROW, patchSize: 2 }, SPLIT, 1)).toThrow(
      "meta model patchSize (2) differs from the target's (4)",
    );
    expect(() => buildHybrid(TARGET, { ...NARROW, depth: 3 }, SPLIT, 1)).toThrow(
      "meta model has 3 blocks but the target is split into 4 modules",
    );
  });
});

describe("width adapters: the hybrid starts at the meta model's function", () => {
  // Reference: the meta model with stage i bypassed — a same-width hybrid whose module-i
  // blocks are the identity. With the target's residual branches zeroed, the adapter hybrid
  // must equal it up to float32 rounding (tolerance 1e-5 on logits of size ~1).
  const metaValues = randomValues(vitParamSpecs(NARROW), 5);
  const bypassed = async (index: number) => {
    const sameWidth = { ...TARGET, width: 8 };
    const h = buildHybrid(sameWidth, NARROW, SPLIT, index);
    const values = new Map([
      ...hybridInitialValues(h, metaValues),
      ...randomValues(
        h.params.filter((p) => p.trainable !== false),
        7,
      ),
    ]);
    identityBlocks(values);
    return logits(sameWidth, h, values);
  };

  for (const index of [1, 2]) {
    it(`module ${index}: padded-identity adapters preserve it exactly (d_m 8 < d_t 16)`, async () => {
      const h = buildHybrid(TARGET, NARROW, SPLIT, index);
      const initial = await initialValues(h, metaValues); // the adapters' own init: eye
      expect(Array.from(initial.get("adapters.in.weight")!.subarray(0, 9))).toEqual([
        1, 0, 0, 0, 0, 0, 0, 0, 0,
      ]);
      identityBlocks(initial);
      const got = await logits(TARGET, h, initial);
      const want = await bypassed(index);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      expect(Math.max(...want.map(Math.abs))).toBeGreaterThan(0.1); // not a trivially zero output
    });
  }

  it("at the real (random) initialisation it starts within 1% of it, like a same-width hybrid", async () => {
    // timm's init (std 0.02) leaves new blocks' residual branches small, not zero; the adapters
    // add little of their own. Stated tolerance: within 1% of the logit scale (max |Δlogit| /
    // max |logit|); measured 0.14% through adapters, 0.075% for the same-width hybrid.
    const relative = (got: Float32Array, want: Float32Array) =>
      maxAbsDiff(got, want) / Math.max(...want.map(Math.abs));
    const want = await bypassed(1);
    const adapted = buildHybrid(TARGET, NARROW, SPLIT, 1);
    const viaAdapters = relative(
      await logits(TARGET, adapted, await initialValues(adapted, metaValues)),
      want,
    );
    const sameWidth = { ...TARGET, width: 8 };
    const plain = buildHybrid(sameWidth, NARROW, SPLIT, 1);
    const plainValues = await initialValues(plain, metaValues, sameWidth);
    const sameWidthStart = relative(await logits(sameWidth, plain, plainValues), want);
    expect(sameWidthStart).toBeGreaterThan(0);
    expect(viaAdapters).toBeGreaterThan(0);
    expect(viaAdapters).toBeLessThan(0.01);
  });

  it("a wider meta model (d_m 24 > d_t 16) is only projected: the start differs", async () => {
    const wideValues = randomValues(vitParamSpecs(WIDE), 5);
    const h = buildHybrid(TARGET, WIDE, SPLIT, 1);
    const initial = await initialValues(h, wideValues);
    identityBlocks(initial);
    const sameWidth = { ...TARGET, width: 24 };
    const ref = buildHybrid(sameWidth, WIDE, SPLIT, 1);
    const refValues = new Map([
      ...hybridInitialValues(ref, wideValues),
      ...randomValues(
        ref.params.filter((p) => p.trainable !== false),
        7,
      ),
    ]);
    identityBlocks(refValues);
    const diff = maxAbsDiff(await logits(TARGET, h, initial), await logits(sameWidth, ref, refValues));
    expect(diff).toBeGreaterThan(1e-3);
  });
});

describe("width adapters: training and assembly", () => {
  const dir = mkdtempSync(join(tmpdir(), "incubator-adapters-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("trains the adapters and module i, never the meta model", async () => {
    const h = buildHybrid(TARGET, NARROW, SPLIT, 1);
    const batch: Batch = { [INPUT.images]: images(), [INPUT.labels]: labels };
    const trainer = await Trainer.create(
      compileTrainer(vitClassifierSpec(TARGET, { batch: BATCH, optimizer: { kind: "sgd" }, ...h }), {
        eval: false,
      }),
      { seed: 9, initial: hybridInitialValues(h, randomValues(vitParamSpecs(NARROW), 5)) },
    );
    const before = trainer.parameters();
    await trainer.trainStep(batch, 0.5);
    const after = trainer.parameters();
    await trainer.release();
    const moved = (name: string) => after.get(name)!.some((v, i) => v !== before.get(name)![i]);
    expect(moved("adapters.in.weight")).toBe(true);
    expect(moved("adapters.out.weight")).toBe(true);
    expect(moved("blocks.2.attn.qkv.weight")).toBe(true);
    expect(moved("meta.blocks.3.mlp.fc1.weight")).toBe(false);
    expect(moved("meta.patch_embed.proj.weight")).toBe(false);
  });

  it("a modular job reports its adapters, and neither its weights nor the assembly keep them", async () => {
    const metaPath = join(dir, "meta.safetensors");
    saveWeights(metaPath, {
      parameters: randomValues(vitParamSpecs(NARROW), 5, 0.05),
      shapes: vitParamSpecs(NARROW),
    });
    const recipe = resolveRecipe("deit", {
      batchSize: 8,
      steps: { pretrain: 2, modular: 2, finetune: 2, e2e: 2 },
      mixup: 0,
      cutmix: 0,
    });
    const dataset = {
      format: "synthetic" as const,
      split: "train" as const,
      length: 32,
      numClasses: 5,
      channels: 3,
      imageSize: 8,
      seed: 1,
    };
    const results = [];
    for (let i = 0; i < K; i++) {
      results.push(
        await runJob({
          phase: "modular",
          target: TARGET,
          meta: NARROW,
          split: SPLIT,
          moduleIndex: i,
          dataset,
          recipe,
          seed: 0,
          metaWeights: metaPath,
          outDir: join(dir, `module-${i}`),
        }),
      );
    }
    expect(results[1]!.adapters).toEqual([
      { name: "adapters.in", inWidth: 8, outWidth: 16 },
      { name: "adapters.out", inWidth: 16, outWidth: 8 },
    ]);
    const sources = results.map((r, i) => ({
      moduleIndex: i,
      parameters: loadWeights(r.weightsPath, { expect: moduleParamSpecs(TARGET, SPLIT, i) }),
    }));
    for (const s of sources)
      expect([...s.parameters.keys()].some((n) => n.startsWith("adapters."))).toBe(false);

    // Even a result that still carried its adapters assembles into exactly the target's tensors.
    const withAdapters = sources.map((s) => ({
      ...s,
      parameters: new Map([...s.parameters, ["adapters.in.weight", new Float32Array(128)]]),
    }));
    const { parameters } = assembleTarget(TARGET, SPLIT, withAdapters);
    expect([...parameters.keys()].sort()).toEqual(
      vitParamSpecs(TARGET)
        .map((s) => s.name)
        .sort(),
    );
  });
});
