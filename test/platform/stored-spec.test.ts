/**
 * A stored FT spec's assembly and export fields are checked where stored specs are parsed, since
 * the job now acts on them (the worker passes them through).
 */
import { describe, expect, it } from "vitest";
import { VIT_DEFAULTS } from "../../src/engine/models/vit.ts";
import { resolveRecipe } from "../../src/incubation/recipe.ts";
import { artifactRef, type StoredJobSpec } from "../../src/platform/dispatch/plan.ts";
import { parseStoredJobSpec } from "../../src/platform/dispatch/stored-spec.ts";
import { TINY_DATA, TINY_VIT } from "../helpers/tiny-run.ts";

const finetune: StoredJobSpec = {
  phase: "finetune",
  target: { ...VIT_DEFAULTS, ...TINY_VIT },
  split: [1, 1, 1, 1],
  dataset: { ...TINY_DATA, length: 64 } as StoredJobSpec["dataset"],
  recipe: resolveRecipe("deit"),
  seed: 1,
  assembleFrom: [0, 1, 2, 3].map((i) => ({ moduleIndex: i, weights: artifactRef(String(i).repeat(64)) })),
  exportOnnx: true,
};

describe("parseStoredJobSpec", () => {
  it("keeps a fine-tuning spec's assembleFrom and exportOnnx", () => {
    expect(parseStoredJobSpec(finetune, "j")).toEqual(finetune);
  });

  it("refuses a malformed assembleFrom or exportOnnx", () => {
    const bad = (over: Record<string, unknown>) => () => parseStoredJobSpec({ ...finetune, ...over }, "j1");
    expect(bad({ assembleFrom: [{ moduleIndex: -1, weights: "x" }] })).toThrow(
      /job j1: stored spec is invalid/,
    );
    expect(bad({ assembleFrom: [] })).toThrow(/assembleFrom/);
    expect(bad({ exportOnnx: "yes" })).toThrow(/exportOnnx/);
  });
});
