import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { datasetFlag } from "../../src/cli/incubate.ts";
import { loadRunConfig } from "../../src/incubation/config.ts";
import type { JobSpec } from "../../src/incubation/job-spec.ts";
import { buildModel } from "../../src/incubation/job-steps.ts";
import { phaseSettings, type Recipe } from "../../src/incubation/recipe.ts";

describe("run configs", () => {
  it("resolves a preset with --set overrides into a validated target, split, data and recipe", () => {
    const c = loadRunConfig("demo", ["recipe.steps.modular=7", "modules=[3,2,2,1]", "seed=5"]);
    expect(c.split).toEqual([3, 2, 2, 1]);
    expect(c.recipe.steps.modular).toBe(7);
    expect(c.recipe.steps.pretrain).toBe(150); // untouched fields keep the preset's value
    expect(c.seed).toBe(5);
    expect(c.target).toMatchObject({ width: 64, depth: 8, heads: 4, imageSize: 16 });
    // The meta model: the target's architecture with one block per module, unless told otherwise.
    expect(c.meta).toMatchObject({ width: 64, depth: 4, heads: 4, patchSize: 4, numClasses: 10 });
    expect(loadRunConfig("demo", ["meta.width=32"]).meta).toMatchObject({ width: 32, depth: 4, heads: 4 });
  });

  it("names the field and the fix when a config is wrong", () => {
    expect(() => loadRunConfig("demo", ["modules=[4,3]"])).toThrow(
      "config.modules: moduleSplit [4,3] sums to 7 but the model has depth 8",
    );
    expect(() => loadRunConfig("demo", ["recipe.baseLr=-1"])).toThrow(/^config.recipe: recipe.baseLr: /);
    expect(() => loadRunConfig("demo", ["dataset.format=tiff"])).toThrow(/^config.dataset: /);
    expect(() => loadRunConfig("nope")).toThrow(
      /"nope" is neither a preset \(demo, fashion-mnist\) nor a readable JSON file/,
    );
    expect(() => loadRunConfig("demo", ["model.width=30"])).toThrow(
      "width (30) must be divisible by heads (4)",
    );
    expect(() => loadRunConfig("demo", ["meta.width=30"])).toThrow(
      "config.meta: width (30) must be divisible by heads (4)",
    );
    expect(() => loadRunConfig("demo", ["meta.heads=2"])).toThrow(/^config.meta: Unrecognized key/);
  });

  it("recipe.recomputeActivations: off by default, on when set, reaching the compiled step; else a clear error", () => {
    const off = loadRunConfig("demo");
    expect(off.recipe.recomputeActivations).toBe(false);
    const on = loadRunConfig("demo", ["recipe.recomputeActivations=true"]);
    for (const phase of ["pretrain", "e2e"] as const) {
      const settings = phaseSettings(on.recipe, phase);
      expect(settings.recomputeActivations).toBe(true);
      const spec = { phase, target: on.target, split: on.split, recipe: on.recipe } as JobSpec;
      expect(buildModel(spec, settings).trainSpec.recomputeActivations).toBe(true);
      expect(
        buildModel(spec, phaseSettings(off.recipe, phase)).trainSpec.recomputeActivations,
      ).toBeUndefined();
    }
    expect(() => loadRunConfig("demo", ["recipe.recomputeActivations=yes"])).toThrow(
      "config.recipe: recipe.recomputeActivations: must be true or false (recompute block activations in the backward pass)",
    );
    // A recipe stored before the field existed (read back without defaults) trains without it.
    const { recomputeActivations: _, ...older } = off.recipe;
    expect(phaseSettings(older as Recipe, "e2e").recomputeActivations).toBe(false);
  });

  it("reads JSON files", () => {
    const dir = mkdtempSync(join(tmpdir(), "incubator-config-"));
    const path = join(dir, "run.json");
    writeFileSync(
      path,
      JSON.stringify({
        model: "deit-t-6",
        modules: 3,
        dataset: { format: "synthetic", imageSize: 32 },
        recipe: "deit3",
      }),
    );
    const c = loadRunConfig(path);
    expect(c.split).toEqual([2, 2, 2]);
    expect(c.recipe.optimizer).toBe("lamb");
    expect(c.target.width).toBe(192);
  });

  it("--dataset takes a directory (IDX or CIFAR) or a JSON spec, for training and evaluation", () => {
    const dir = mkdtempSync(join(tmpdir(), "incubator-cifar-"));
    writeFileSync(join(dir, "data_batch_1.bin"), "");
    expect(datasetFlag(dir)).toEqual([
      `dataset=${JSON.stringify({ format: "cifar10", path: dir, split: "train" })}`,
      `evalDataset=${JSON.stringify({ format: "cifar10", path: dir, split: "test" })}`,
    ]);
    expect(datasetFlag("/data/mnist")[0]).toBe(
      `dataset=${JSON.stringify({ format: "idx", path: "/data/mnist", split: "train" })}`,
    );
    expect(datasetFlag('{"format":"synthetic","numClasses":4}')[1]).toBe(
      `evalDataset=${JSON.stringify({ format: "synthetic", numClasses: 4, split: "test" })}`,
    );
    expect(() => datasetFlag("{nope")).toThrow(/^--dataset: not valid JSON/);
  });
});
