/**
 * The data pipeline against torchvision (scripts/reference/data_parity.py → test/fixtures/
 * data_parity.*): the padded random crop at every offset in both padding modes, the zero fill
 * before normalisation, per-image offsets, the per-format normalisation constants, and Mixup /
 * CutMix against timm's Mixup for given draws.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { shiftedCrop } from "../../src/data/augment/geometric.ts";
import { toImage } from "../../src/data/augment/image.ts";
import { applyMix, type MixDraw } from "../../src/data/augment/mix.ts";
import { buildTransform, parseAugmentConfig } from "../../src/data/augment/pipeline.ts";
import { FASHION_MNIST_NORMALIZATION, FORMAT_NORMALIZATION } from "../../src/data/normalization.ts";
import { readSafetensors, toFloat32 } from "../../src/engine/checkpoint/safetensors.ts";
import { Rng } from "../../src/engine/rng.ts";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { trainingNormalization } from "../../src/incubation/job-steps.ts";
import { phaseSettings, resolveRecipe } from "../../src/incubation/recipe.ts";

const FIXTURES = join(import.meta.dirname, "../fixtures");
const st = readSafetensors(join(FIXTURES, "data_parity.safetensors"));
const fx = JSON.parse(readFileSync(join(FIXTURES, "data_parity.json"), "utf8")) as {
  padding: number;
  offsets: [number, number][];
  normalized_with: keyof typeof FORMAT_NORMALIZATION;
  normalization: Record<string, { mean: number[]; std: number[] }>;
  fashion_mnist: { mean: number[]; std: number[] } | null;
  mix: { cases: MixDraw[]; lambda_after: number[]; label_smoothing: number; classes: number };
};
const get = (name: string) => toFloat32(st.tensors.get(name)!);
const [C, H, W] = [...st.tensors.get("image")!.shape] as [number, number, number];
const PIXELS = Uint8Array.from(get("image"));
const per = C * H * W;
const MODES = { constant: "zero", reflect: "reflect" } as const;

describe("padded random crop = torchvision RandomCrop(padding)", () => {
  for (const [torchMode, mode] of Object.entries(MODES)) {
    it(`every offset, padding_mode "${torchMode}" (ours "${mode}")`, () => {
      const crops = get(`crops.${torchMode}`);
      fx.offsets.forEach(([i, j], k) => {
        const ours = shiftedCrop(toImage(PIXELS, C, H, W), i - fx.padding, j - fx.padding, mode);
        const want = crops.subarray(k * per, (k + 1) * per).map((v) => v / 255);
        expect(Array.from(ours.data), `offset (${i}, ${j})`).toEqual(Array.from(want));
      });
    });
  }

  it("fills with zeros by default, like torchvision (DeiT-III's reflection is opt-in)", () => {
    const crop = parseAugmentConfig({ crop: { kind: "padded", padding: 2 } }).crop;
    expect(crop).toEqual({ kind: "padded", padding: 2, mode: "zero" });
    expect(resolveRecipe("deit3").augment.crop).toEqual({ kind: "padded", padding: 4, mode: "reflect" });
  });

  it("in the pipeline: a padded pixel is 0 before normalisation, and each image draws its own offset", () => {
    const norm = FORMAT_NORMALIZATION[fx.normalized_with];
    const t = buildTransform(
      { crop: { kind: "padded", padding: fx.padding }, normalize: norm },
      { channels: C, height: H, width: W },
    );
    const torch = get("crops.constant.normalized");
    const rng = new Rng(9);
    const seen = new Map<number, number>();
    for (let n = 0; n < 1000; n++) {
      const out = t.apply(PIXELS, rng);
      const k = fx.offsets.findIndex((_, k) =>
        torch.subarray(k * per, (k + 1) * per).every((v, at) => Math.abs(v - out[at]!) <= 1e-5),
      );
      expect(k, `image ${n}: matches no torchvision crop`).toBeGreaterThanOrEqual(0);
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
    // 25 offsets, 1000 images: all occur (P(one missing) < 25·(24/25)^1000 ≈ 5e-17), none dominates.
    expect(seen.size).toBe(fx.offsets.length);
    expect(Math.max(...seen.values())).toBeLessThan(100);
  });
});

describe("normalisation constants", () => {
  it("per format, as the reference scripts use them", () => {
    for (const [format, want] of Object.entries(fx.normalization)) {
      const ours = FORMAT_NORMALIZATION[format as keyof typeof FORMAT_NORMALIZATION];
      expect({ mean: ours.mean, std: ours.std }, format).toEqual({ mean: want.mean, std: want.std });
    }
  });

  it("Fashion-MNIST's are its training set's, and the preset uses them", () => {
    if (fx.fashion_mnist) {
      expect(FASHION_MNIST_NORMALIZATION).toEqual({ mean: fx.fashion_mnist.mean, std: fx.fashion_mnist.std });
    }
    expect(loadRunConfig("fashion-mnist").recipe.augment.normalize).toEqual(FASHION_MNIST_NORMALIZATION);
  });

  it("a job trains and evaluates with the recipe's constants, else its training format's", () => {
    const settings = phaseSettings(resolveRecipe("deit"), "e2e");
    const job = (format: "cifar10" | "synthetic") =>
      ({ dataset: { format, path: "/data" } }) as Parameters<typeof trainingNormalization>[0];
    expect(trainingNormalization(job("cifar10"), settings)).toEqual(FORMAT_NORMALIZATION.cifar10);
    const given = { mean: [0.1], std: [0.2] };
    expect(
      trainingNormalization(job("cifar10"), {
        ...settings,
        augment: { ...settings.augment, normalize: given },
      }),
    ).toEqual(given);
  });
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b[i]!)), 0);
}

describe("Mixup / CutMix = timm Mixup (batch mode, corrected λ) for the same draws", () => {
  const shape = st.tensors.get("mix.images")!.shape as number[];
  const [batch, channels, height, width] = shape as [number, number, number, number];
  const labels = Array.from(get("mix.labels"));
  fx.mix.cases.forEach((draw, k) => {
    it(`${draw.method} λ ${draw.lambda}${draw.method === "cutmix" ? ` centred at (${draw.cy}, ${draw.cx})` : ""}`, () => {
      const images = Float32Array.from(get("mix.images"));
      const r = applyMix(images, labels, { batch, channels, height, width }, draw, {
        labelSmoothing: fx.mix.label_smoothing,
        numClasses: fx.mix.classes,
      });
      expect(r.lambda).toBeCloseTo(fx.mix.lambda_after[k]!, 12);
      expect(maxAbsDiff(images, get(`mix.${k}.images`)), "images").toBeLessThanOrEqual(1e-6);
      expect(maxAbsDiff(r.targets, get(`mix.${k}.targets`)), "targets").toBeLessThanOrEqual(1e-6);
    });
  });
});
