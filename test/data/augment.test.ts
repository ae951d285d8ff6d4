import { describe, expect, it } from "vitest";
import { sampleBeta } from "../../src/data/augment/beta.ts";
import { equalize, posterize, solarize } from "../../src/data/augment/color.ts";
import { horizontalFlip, paddedRandomCrop, rotate } from "../../src/data/augment/geometric.ts";
import { type Image, toImage } from "../../src/data/augment/image.ts";
import { type MixOptions, mixBatch } from "../../src/data/augment/mix.ts";
import { buildTransform } from "../../src/data/augment/pipeline.ts";
import { RAND_AUGMENT_OPS } from "../../src/data/augment/randaugment.ts";
import { openSynthetic } from "../../src/data/formats/synthetic.ts";
import { Rng } from "../../src/engine/rng.ts";
import { equalBytes } from "./helpers.ts";

const ds = openSynthetic({
  numClasses: 10,
  channels: 3,
  height: 20,
  width: 20,
  length: 16,
  seed: 1,
  split: "train",
});
const src = ds.getImage(3);

const FULL = {
  crop: { kind: "random-resized" as const },
  outputSize: 16,
  hflip: 0.5,
  randAugment: { ops: 2, magnitude: 9, magnitudeStd: 0.5 },
  threeAugment: { colorJitter: 0.3 },
  normalize: { mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.2] },
  randomErasing: { prob: 1 },
};

describe("augmentation determinism", () => {
  it("same seed → identical bytes, different seed → different, and the source is untouched", () => {
    const t = buildTransform(FULL, ds);
    const before = Uint8Array.from(src);
    const a = t.apply(src, new Rng(7));
    const b = t.apply(src, new Rng(7));
    const c = t.apply(src, new Rng(8));
    expect(a.length).toBe(3 * 16 * 16);
    expect(equalBytes(a, b)).toBe(true);
    expect(equalBytes(a, c)).toBe(false);
    expect(equalBytes(src, before)).toBe(true);
  });

  it("every RandAugment op is deterministic under a seed and keeps values in [0, 1]", () => {
    for (const [name, op] of Object.entries(RAND_AUGMENT_OPS)) {
      const img = toImage(src, 3, 20, 20);
      const x = op(img, 9, new Rng(3), [0.5, 0.5, 0.5]);
      const y = op(toImage(src, 3, 20, 20), 9, new Rng(3), [0.5, 0.5, 0.5]);
      expect(equalBytes(x.data, y.data), name).toBe(true);
      expect(
        x.data.every((v) => v >= 0 && v <= 1),
        name,
      ).toBe(true);
    }
  });

  it("padded crop (both modes) and padded-crop pipelines are seeded too", () => {
    for (const mode of ["zero", "reflect"] as const) {
      const t = buildTransform({ crop: { kind: "padded", padding: 4, mode }, hflip: 0.5 }, ds);
      expect(equalBytes(t.apply(src, new Rng(1)), t.apply(src, new Rng(1)))).toBe(true);
      const outs = new Set(Array.from({ length: 8 }, (_, s) => t.apply(src, new Rng(s)).join(",")));
      expect(outs.size).toBeGreaterThan(1);
    }
  });
});

describe("augmentation semantics", () => {
  const img: Image = { data: Float32Array.of(0, 0.25, 0.5, 1, 0.6, 0.2), channels: 1, height: 2, width: 3 };

  it("flip, solarize, posterize, equalize behave like their PIL definitions", () => {
    expect(Array.from(horizontalFlip(img).data)).toEqual(
      Array.from(Float32Array.of(0.5, 0.25, 0, 0.2, 0.6, 1)),
    );
    // solarize 128: values ≥ 128/255 invert
    const s = solarize(img, 128).data;
    expect(s[3]).toBe(0);
    expect(s[1]).toBeCloseTo(0.25);
    expect(s[2]).toBeCloseTo((255 - 128) / 255);
    // posterize to 1 bit: ≥128 → 128, else 0
    expect(Array.from(posterize(img, 1).data, (v) => Math.round(v * 255))).toEqual([0, 0, 128, 128, 128, 0]);
    const eq = equalize({ data: Float32Array.of(0.1, 0.1, 0.2, 0.2), channels: 1, height: 2, width: 2 }).data;
    expect(eq.every((v) => v >= 0 && v <= 1)).toBe(true);
  });

  it("rotation by 90° moves the top-left corner to the bottom-left (counter-clockwise)", () => {
    const sq: Image = { data: Float32Array.of(1, 0, 0, 0), channels: 1, height: 2, width: 2 };
    expect(Array.from(rotate(sq, 90, [0]).data, (v) => Math.round(v))).toEqual([0, 0, 1, 0]);
  });

  it("padded zero crop keeps content shifted by at most the padding", () => {
    const out = paddedRandomCrop(toImage(src, 3, 20, 20), new Rng(2), 2, "zero");
    expect(out.data.length).toBe(3 * 400);
  });
});

describe("Beta sampler", () => {
  it("matches Beta(a, b) mean and variance", () => {
    const rng = new Rng(123);
    for (const [a, b] of [
      [0.8, 0.8],
      [1, 1],
      [2, 5],
      [0.2, 0.2],
    ] as const) {
      const n = 20000;
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        const x = sampleBeta(rng, a, b);
        expect(x >= 0 && x <= 1).toBe(true);
        s += x;
        s2 += x * x;
      }
      const mean = s / n;
      const variance = s2 / n - mean * mean;
      expect(mean).toBeCloseTo(a / (a + b), 1.5);
      expect(variance).toBeCloseTo((a * b) / ((a + b) ** 2 * (a + b + 1)), 2);
    }
  });
});

describe("Mixup / CutMix", () => {
  const B = 6;
  const shape = { batch: B, channels: 3, height: 8, width: 8 };
  const labels = Int32Array.of(0, 1, 2, 3, 4, 5);
  const opts: MixOptions = {
    mixupAlpha: 0.8,
    cutmixAlpha: 1,
    prob: 1,
    switchProb: 0.5,
    labelSmoothing: 0.1,
    numClasses: 10,
  };

  it("targets sum to 1 per row and follow λ; both methods occur; seeded", () => {
    const methods = new Set<string>();
    for (let s = 0; s < 40; s++) {
      const images = new Float32Array(B * 192).map((_, i) => Math.floor(i / 192));
      const r = mixBatch(images, labels, shape, new Rng(s), opts);
      methods.add(r.method);
      for (let i = 0; i < B; i++) {
        const row = r.targets.subarray(i * 10, (i + 1) * 10);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        const off = 0.01;
        const on = 0.9 + off;
        const j = B - 1 - i;
        const expectedSelf = off + (on - off) * r.lambda + (j === i ? (on - off) * (1 - r.lambda) : 0);
        expect(row[labels[i]!]).toBeCloseTo(expectedSelf, 5);
      }
      if (r.method === "cutmix") {
        // λ is the un-pasted fraction: count pixels of image 0 that came from image B-1.
        const pasted = images.subarray(0, 192).filter((v) => v === B - 1).length / 192;
        expect(1 - pasted).toBeCloseTo(r.lambda, 6);
      }
      if (r.method === "mixup") expect(images[0]).toBeCloseTo((1 - r.lambda) * (B - 1), 5);
    }
    expect(methods).toEqual(new Set(["mixup", "cutmix"]));
    const a = mixBatch(new Float32Array(B * 192).fill(1), labels, shape, new Rng(9), opts);
    const b = mixBatch(new Float32Array(B * 192).fill(1), labels, shape, new Rng(9), opts);
    expect(equalBytes(a.targets, b.targets)).toBe(true);
  });

  it("with prob 0 only smooths labels", () => {
    const r = mixBatch(new Float32Array(B * 192), labels, shape, new Rng(1), { ...opts, prob: 0 });
    expect(r.method).toBe("none");
    expect(r.targets[0]).toBeCloseTo(0.91, 6);
    expect(r.targets[1]).toBeCloseTo(0.01, 6);
  });
});

describe("config validation", () => {
  it("names the field", () => {
    expect(() => buildTransform({ hflip: 2 }, ds)).toThrow(/field "hflip"/);
    expect(() => buildTransform({ crop: { kind: "random-resized", scale: [0.9, 0.1] } }, ds)).toThrow(
      /field "crop\.scale"/,
    );
    expect(() => buildTransform({ normalize: { mean: [0.1, 0.2], std: [1] } }, ds)).toThrow(
      /normalize\.mean has 2 values/,
    );
  });
});
