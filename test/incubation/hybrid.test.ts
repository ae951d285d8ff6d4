import { describe, expect, it } from "vitest";
import { dropMaskShape, INPUT, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";
import { type Batch, compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { assembleTarget } from "../../src/incubation/assemble.ts";
import { buildHybrid, hybridInitialValues } from "../../src/incubation/hybrid.ts";
import { metaConfigFor, moduleParamSpecs, moduleRanges, resolveSplit } from "../../src/incubation/modules.ts";
import { SMALL_SPLIT, SMALL_TARGET } from "../helpers/incubation.ts";

const TARGET = SMALL_TARGET;
const SPLIT = SMALL_SPLIT;
const META = metaConfigFor(TARGET, SPLIT.length);

describe("module split", () => {
  it("splits evenly with the extra blocks on the outer modules, or as given", () => {
    expect(resolveSplit(12, 4)).toEqual([3, 3, 3, 3]);
    expect(resolveSplit(14, 4)).toEqual([4, 3, 3, 4]);
    expect(resolveSplit(15, 4)).toEqual([4, 4, 3, 4]);
    expect(resolveSplit(6, [2, 1, 1, 2])).toEqual([2, 1, 1, 2]);
    expect(moduleRanges([4, 3, 3, 4]).map((r) => [r.start, r.end])).toEqual([
      [0, 4],
      [4, 7],
      [7, 10],
      [10, 14],
    ]);
  });

  it("refuses splits that do not cover the depth, naming what is wrong", () => {
    expect(() => resolveSplit(12, [4, 4, 3])).toThrow(
      "moduleSplit [4,4,3] sums to 11 but the model has depth 12",
    );
    expect(() => resolveSplit(12, [6, 0, 6])).toThrow("moduleSplit[1] must be ≥ 1 block, got 0");
    expect(() => resolveSplit(3, 4)).toThrow("modules (4) cannot exceed depth (3)");
  });

  it("gives every target parameter to exactly one module", () => {
    const owned = SPLIT.flatMap((_, i) => moduleParamSpecs(TARGET, SPLIT, i).map((s) => s.name));
    expect(owned.sort()).toEqual(
      vitParamSpecs(TARGET)
        .map((s) => s.name)
        .sort(),
    );
    expect(moduleParamSpecs(TARGET, SPLIT, 0).map((s) => s.name)).toContain("pos_embed");
    expect(moduleParamSpecs(TARGET, SPLIT, 3).map((s) => s.name)).toContain("head.weight");
  });
});

describe("the hybrid of modular training", () => {
  it("trains only module i's parameters and freezes every meta stage j ≠ i", () => {
    const h1 = buildHybrid(TARGET, META, SPLIT, 1);
    const trainable = h1.params.filter((p) => p.trainable !== false).map((p) => p.name);
    const frozen = h1.params.filter((p) => p.trainable === false).map((p) => p.name);
    expect(trainable).toEqual(moduleParamSpecs(TARGET, SPLIT, 1).map((p) => p.name));
    expect(trainable.every((n) => n.startsWith("blocks.2."))).toBe(true);
    expect(frozen).toContain("meta.patch_embed.proj.weight");
    expect(frozen).toContain("meta.head.weight");
    expect(frozen.some((n) => n.startsWith("meta.blocks.1."))).toBe(false); // slot 1 is the target's
    expect(h1.plan.blocks).toEqual(["meta.blocks.0", "blocks.2", "meta.blocks.2", "meta.blocks.3"]);
    expect(h1.depth).toBe(4);

    const h0 = buildHybrid(TARGET, META, SPLIT, 0);
    expect(h0.plan).toMatchObject({
      embedPrefix: "",
      blocks: ["blocks.0", "blocks.1", "meta.blocks.1", "meta.blocks.2", "meta.blocks.3"],
      headPrefix: "meta.",
    });
    const h3 = buildHybrid(TARGET, META, SPLIT, 3);
    expect(h3.plan.headPrefix).toBe("");
    expect(h3.plan.embedPrefix).toBe("meta.");
  });

  it("refuses a meta model that does not fit, saying what differs", () => {
    expect(() => buildHybrid(TARGET, { ...META, heads: 4 }, SPLIT, 0)).toThrow(
      "meta model heads (4) differs from the target's (2)",
    );
    expect(() => buildHybrid(TARGET, { ...META, depth: 3 }, SPLIT, 0)).toThrow(/meta model has 3 blocks/);
  });

  it("sends the loss gradient to module i through the frozen meta blocks after it", async () => {
    const rng = new Rng(5);
    const metaParams = new Map<string, Float32Array>();
    for (const spec of vitParamSpecs(META)) {
      const n = spec.shape.reduce((a, b) => a * b, 1);
      metaParams.set(
        spec.name,
        new Float32Array(n).map(() => rng.normal() * 0.2),
      );
    }
    const batch = 4;
    const data: Batch = {
      images: f32(
        [batch, 3, 8, 8],
        new Float32Array(batch * 192).map(() => rng.normal()),
      ),
      labels: { dtype: "int64", shape: [batch], data: BigInt64Array.from([0n, 1n, 2n, 3n]) },
      [INPUT.dropMask]: f32(dropMaskShape(4, batch), new Float32Array(4 * 2 * batch).fill(1)),
    };
    const hybrid = buildHybrid(TARGET, META, SPLIT, 1);
    const spec = vitClassifierSpec(TARGET, {
      batch,
      optimizer: { kind: "sgd", momentum: 0 },
      params: hybrid.params,
      plan: hybrid.plan,
      dropPathRate: 0.1,
    });
    expect(spec.inputs.find((i) => i.name === INPUT.dropMask)?.shape).toEqual([hybrid.depth, 2, batch]);
    const artifacts = compileTrainer(spec, { eval: false });

    // Train one step; then again with a different meta block *after* slot 1.
    const stepWith = async (meta: Map<string, Float32Array>) => {
      const trainer = await Trainer.create(artifacts, {
        seed: 1,
        initial: hybridInitialValues(hybrid, meta),
      });
      const before = trainer.parameters();
      const result = await trainer.trainStep(data, 0.1);
      const after = trainer.parameters();
      await trainer.release();
      return { before, after, result };
    };
    const a = await stepWith(metaParams);
    expect(a.result.gradNorm).toBeGreaterThan(0);
    const moved = (name: string) => a.after.get(name)!.some((v, i) => v !== a.before.get(name)![i]);
    expect(moved("blocks.2.mlp.fc1.weight")).toBe(true);
    expect(moved("meta.blocks.3.mlp.fc1.weight")).toBe(false);
    expect(moved("meta.head.weight")).toBe(false);

    const changedLater = new Map(metaParams);
    changedLater.set(
      "blocks.3.mlp.fc2.weight",
      metaParams.get("blocks.3.mlp.fc2.weight")!.map((v) => v * 3),
    );
    const b = await stepWith(changedLater);
    const update = (r: typeof a) =>
      r.after
        .get("blocks.2.attn.qkv.weight")!
        .map((v, i) => v - r.before.get("blocks.2.attn.qkv.weight")![i]!);
    const du = update(a).map((v, i) => Math.abs(v - update(b)[i]!));
    expect(Math.max(...du)).toBeGreaterThan(1e-6);
  });
});

describe("assembly", () => {
  const sources = SPLIT.map((_, i) => {
    const hybrid = buildHybrid(TARGET, META, SPLIT, i);
    const parameters = new Map<string, Float32Array>();
    for (const spec of hybrid.params) {
      const n = spec.shape.reduce((x, y) => x * y, 1);
      // Target-module tensors carry their module's number, meta tensors 99.
      parameters.set(spec.name, new Float32Array(n).fill(spec.trainable === false ? 99 : i + 1));
    }
    return { moduleIndex: i, parameters };
  });

  it("takes stage i from job i and nothing from the meta model", () => {
    const { parameters, origin } = assembleTarget(TARGET, SPLIT, sources);
    expect([...parameters.keys()].sort()).toEqual(
      vitParamSpecs(TARGET)
        .map((s) => s.name)
        .sort(),
    );
    for (const [name, value] of parameters) {
      expect(name.startsWith("meta.")).toBe(false);
      expect(value.every((v) => v === origin.get(name)! + 1)).toBe(true);
    }
    expect(origin.get("cls_token")).toBe(0);
    expect(origin.get("blocks.1.norm1.weight")).toBe(0);
    expect(origin.get("blocks.2.norm1.weight")).toBe(1);
    expect(origin.get("blocks.3.norm1.weight")).toBe(2);
    expect(origin.get("blocks.5.norm1.weight")).toBe(3);
    expect(origin.get("head.bias")).toBe(3);
  });

  it("fails with the module and tensor when a result is incomplete", () => {
    const broken = sources.map((s) => ({ ...s, parameters: new Map(s.parameters) }));
    broken[2]!.parameters.delete("blocks.3.attn.proj.bias");
    expect(() => assembleTarget(TARGET, SPLIT, broken)).toThrow(
      `module 2's result has no tensor "blocks.3.attn.proj.bias"`,
    );
    expect(() => assembleTarget(TARGET, SPLIT, sources.slice(0, 3))).toThrow("no result for module 3 of 4");
  });
});
