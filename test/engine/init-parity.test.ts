/**
 * Initialisation parity with timm's VisionTransformer (the version the official Deep Incubation
 * code ships): every initialised tensor's moments against the distribution timm gives it.
 *
 *   Linear weights (qkv, proj, fc1, fc2, head)  trunc_normal_(std .02), bounds ±2 absolute
 *   Linear biases                               0
 *   LayerNorm weight / bias                     1 / 0
 *   patch_embed.proj (Conv2d, left at PyTorch's default): weight kaiming_uniform_(a=√5) and bias
 *                                               both U(±1/√fan_in), fan_in = C·p·p
 *   cls_token, pos_embed                        trunc_normal_(std .02)
 *
 * Tolerances are 6 standard errors of each statistic under that distribution, so a correct
 * sampler fails with probability < 1e-8 per check whatever the seed (three seeds are tried);
 * a sampler truncated at ±2 std (std 0.88·.02) fails on every large tensor.
 */
import { describe, expect, it } from "vitest";
import { VIT_DEFAULTS, type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import { FlatLayout } from "../../src/engine/train/params.ts";

const CFG: VitConfig = {
  ...VIT_DEFAULTS,
  imageSize: 32,
  patchSize: 4,
  width: 96,
  depth: 2,
  heads: 3,
  numClasses: 10,
};

type Expected =
  | { kind: "constant"; value: number }
  | { kind: "normal"; std: number }
  | { kind: "uniform"; bound: number };

/** What timm gives each tensor, by its name alone (independent of our specs' `init`). */
function timmDistribution(name: string, cfg: VitConfig): Expected {
  const convBound = 1 / Math.sqrt(cfg.channels * cfg.patchSize * cfg.patchSize);
  if (name.startsWith("patch_embed.proj.")) return { kind: "uniform", bound: convBound };
  if (name === "cls_token" || name === "pos_embed") return { kind: "normal", std: 0.02 };
  if (/(^|\.)norm\d?\.weight$/.test(name)) return { kind: "constant", value: 1 };
  if (name.endsWith(".bias")) return { kind: "constant", value: 0 };
  if (name.endsWith(".weight")) return { kind: "normal", std: 0.02 };
  throw new Error(`no timm rule for ${name}`);
}

function moments(v: Float32Array) {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of v) {
    sum += x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  const mean = sum / v.length;
  let sq = 0;
  for (const x of v) sq += (x - mean) ** 2;
  return { mean, std: Math.sqrt(sq / (v.length - 1)), min, max };
}

const Z = 6;

function check(name: string, v: Float32Array, want: Expected): void {
  const n = v.length;
  const m = moments(v);
  const at = `${name} (n ${n}): ${JSON.stringify(m)}`;
  switch (want.kind) {
    case "constant":
      expect(m.min, at).toBe(want.value);
      expect(m.max, at).toBe(want.value);
      return;
    case "normal": {
      const s = want.std;
      expect(Math.abs(m.mean), `${at}: mean`).toBeLessThanOrEqual((Z * s) / Math.sqrt(n));
      // sd of the sample std of a normal ≈ σ/√(2n)
      expect(Math.abs(m.std - s), `${at}: std`).toBeLessThanOrEqual((Z * s) / Math.sqrt(2 * n));
      // Bounds ±2 absolute: never reached at std .02 (100 σ).
      expect(Math.max(-m.min, m.max), `${at}: bounds`).toBeLessThanOrEqual(2);
      if (n >= 4000) {
        // Untruncated at ±2σ: P(|z| > 2) = 4.55 %; count it within 6 binomial sd.
        const p = 0.0455;
        let beyond = 0;
        for (const x of v) if (Math.abs(x) > 2 * s) beyond++;
        expect(Math.abs(beyond / n - p), `${at}: share beyond 2σ ${beyond / n}`).toBeLessThanOrEqual(
          Z * Math.sqrt((p * (1 - p)) / n),
        );
      }
      return;
    }
    case "uniform": {
      const b = want.bound;
      const s = b / Math.sqrt(3);
      expect(Math.abs(m.mean), `${at}: mean`).toBeLessThanOrEqual((Z * s) / Math.sqrt(n));
      // sd of the sample std of U(±b) ≈ b/√(15n)
      expect(Math.abs(m.std - s), `${at}: std`).toBeLessThanOrEqual((Z * b) / Math.sqrt(15 * n));
      expect(m.min, `${at}: lower bound`).toBeGreaterThanOrEqual(-b);
      expect(m.max, `${at}: upper bound`).toBeLessThanOrEqual(b);
      // The extremes reach the bounds: P(max < b(1 − t)) ≈ e^(−n t / 2); t = 40/n gives e^(−20).
      expect(m.max, `${at}: reaches the upper bound`).toBeGreaterThanOrEqual(b * (1 - 40 / n));
      expect(m.min, `${at}: reaches the lower bound`).toBeLessThanOrEqual(-b * (1 - 40 / n));
      return;
    }
  }
}

describe("initialisation matches timm's ViT, tensor by tensor", () => {
  const specs = vitParamSpecs(CFG);
  const layout = new FlatLayout(specs);

  for (const seed of [1, 2, 3]) {
    it(`every tensor's moments and bounds (seed ${seed})`, () => {
      const buffers = layout.initialise(new Rng(seed));
      for (const spec of specs)
        check(spec.name, layout.view(buffers, spec.name), timmDistribution(spec.name, CFG));
    });
  }

  it("covers every kind of tensor the ViT has", () => {
    const kinds = new Set(specs.map((s) => JSON.stringify(timmDistribution(s.name, CFG))));
    expect(kinds.size).toBe(4); // ones, zeros, trunc-normal .02, the conv's uniform
  });
});
