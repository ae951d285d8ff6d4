/**
 * LayerNorm affine folded into the linear layer that reads it (models/vit.ts,
 * ForwardOptions.foldNormAffine): the same loss and gradients as the norm applying its own scale
 * and shift — on the plain ViT (each block's norm2 fused with the projection's residual add, the
 * class-token-only last block, the head), with each block's second residual fused into the next
 * norm1, with drop-path (norms as separate ops), and on an MT hybrid (meta blocks under another
 * prefix) — and a backward with fewer passes over the token rows. Also attention one head at a
 * time (ForwardOptions.attentionPerHead), another option that must not change the function.
 */
import { describe, expect, it } from "vitest";
import { type ClassifierOptions, INPUT, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import type { VitConfig } from "../../src/engine/models/vit.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { Rng } from "../../src/engine/rng.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import { f32, type HostTensor } from "../../src/engine/runtime/tensor.ts";
import { buildHybrid } from "../../src/incubation/hybrid.ts";
import { metaConfigFor } from "../../src/incubation/modules.ts";
import { SMALL_SPLIT, SMALL_TARGET } from "../helpers/incubation.ts";
import { specGradientGraph } from "./spec-gradients.ts";

const TARGET: VitConfig = SMALL_TARGET;
const BATCH = 4;
const HYBRID = buildHybrid(TARGET, metaConfigFor(TARGET, SMALL_SPLIT.length), SMALL_SPLIT, 1);

type Options = Omit<ClassifierOptions, "batch" | "optimizer" | "foldNormAffine">;

function graph(fold: boolean, opts: Options) {
  const spec = vitClassifierSpec(TARGET, {
    batch: BATCH,
    optimizer: { kind: "sgd", momentum: 0 },
    labelSmoothing: 0.1,
    ...opts,
    foldNormAffine: fold ? "always" : "never",
  });
  return { spec, ...specGradientGraph(spec) };
}

async function lossAndGradients(fold: boolean, opts: Options): Promise<Record<string, HostTensor>> {
  const { b, spec } = graph(fold, opts);
  const session = await EngineSession.create(toOnnxModel(b.graph));
  const rng = new Rng(3);
  const feeds: Record<string, HostTensor> = {};
  for (const p of spec.params) {
    const n = p.shape.reduce((a, c) => a * c, 1);
    // Scales away from 1 and shifts away from 0, so that a dropped or doubled affine shows.
    const around = /norm[12]?\.weight$/.test(p.name) ? 1 : 0;
    feeds[`p.${p.name}`] = f32(
      p.shape,
      new Float32Array(n).map(() => around + 0.3 * rng.normal()),
    );
  }
  for (const input of spec.inputs) {
    const n = input.shape.reduce((a: number, c) => a * (c as number), 1);
    if (input.name === INPUT.labels)
      feeds[input.name] = {
        dtype: "int64",
        shape: input.shape as number[],
        data: BigInt64Array.from({ length: n }, () => BigInt(rng.int(TARGET.numClasses))),
      };
    else if (input.name === INPUT.dropMask)
      feeds[input.name] = f32(
        input.shape as number[],
        new Float32Array(n).map((_, i) => (i % 3 === 1 ? 0 : 1 / 0.7)),
      );
    else
      feeds[input.name] = f32(
        input.shape as number[],
        new Float32Array(n).map(() => rng.normal()),
      );
  }
  const out = await session.run(feeds);
  await session.release();
  return out;
}

/** Largest |a − b| / (|b| + 1e-3) over two float tensors. */
function worstRelative(a: HostTensor, b: HostTensor): number {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  expect(x.length).toBe(y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++)
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!) / (Math.abs(y[i]!) + 1e-3));
  return worst;
}

/** The same keys, each within float32 rounding of the other (see worstRelative). */
function sameFunction(a: Record<string, HostTensor>, b: Record<string, HostTensor>, what: string): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const key of Object.keys(b)) {
    const worst = worstRelative(a[key]!, b[key]!);
    if (worst > 1e-3) throw new Error(`${key}: ${what} differs by ${worst.toExponential(2)} (relative)`);
  }
}

const CASES: [string, Options][] = [
  ["plain ViT", {}],
  ["second residual fused into the next norm1", { fuseResidualNorm: true }],
  ["drop-path", { dropPathRate: 0.3 }],
  ["MT hybrid", { params: HYBRID.params, plan: HYBRID.plan }],
];

describe("LayerNorm affine folded into the next linear layer", () => {
  for (const [name, opts] of CASES) {
    it(`${name}: the same loss and gradients as the norm applying its own affine`, async () => {
      const [folded, plain] = await Promise.all([
        lossAndGradients(true, opts),
        lossAndGradients(false, opts),
      ]);
      sameFunction(folded, plain, "folded");
      // the norms' own parameters receive gradients through the fold
      const normGrads = Object.keys(folded).filter((k) => /norm[12]?\.(weight|bias)$/.test(k));
      expect(normGrads.length).toBeGreaterThan(0);
      for (const k of normGrads) expect((folded[k]!.data as Float32Array).some((v) => v !== 0)).toBe(true);
    });
  }

  it('"auto" folds a norm only where 5·rows > 8·(its reader\'s outputs)', () => {
    // Which norms keep their affine: the param names their ops read (a folded norm reads none).
    const affineNorms = (batch: number) => {
      const spec = vitClassifierSpec(TARGET, { batch, optimizer: { kind: "sgd", momentum: 0 } });
      const { b, forwardNodes } = specGradientGraph(spec);
      return b.graph.nodes
        .slice(0, forwardNodes)
        .filter((n) => n.op === "layerNorm" || n.op === "skipLayerNorm")
        .map((n) => n.inputs.find((v) => /norm[12]?\.weight$/.test(v.name ?? ""))?.name ?? "folded");
    };
    // batch 4: 20 token rows against qkv's 48 and fc1's 64 outputs — nothing folds
    expect(affineNorms(4).every((name) => name !== "folded")).toBe(true);
    // batch 64: 320 token rows fold (5·320 > 8·64); the class-token-only block's norm2 (64 rows,
    // 5·64 < 8·64) does not; the head's norm (64 rows, 10 classes: 5·64 > 8·10) does
    const names = affineNorms(64);
    const last = TARGET.depth - 1;
    expect(names.filter((n) => n !== "folded")).toEqual([`p.blocks.${last}.norm2.weight`]);
  });

  it("attention one head at a time (attentionPerHead) gives the same loss and gradients", async () => {
    for (const opts of [{}, { params: HYBRID.params, plan: HYBRID.plan }] as Options[]) {
      const [perHead, allHeads] = await Promise.all([
        lossAndGradients(true, { ...opts, attentionPerHead: true }),
        lossAndGradients(true, opts),
      ]);
      sameFunction(perHead, allHeads, "per head");
    }
  });

  it("the backward reads the token rows in fewer nodes: five fewer per norm", () => {
    const rowsWide = (fold: boolean) => {
      const { b, forwardNodes } = graph(fold, {});
      const rows = BATCH * ((TARGET.imageSize / TARGET.patchSize) ** 2 + 1);
      const isRows = (shape: readonly unknown[]) =>
        shape.length === 2 && shape[0] === rows && shape[1] === TARGET.width;
      const norms = b.graph.nodes
        .slice(0, forwardNodes)
        .filter(
          (n) => (n.op === "layerNorm" || n.op === "skipLayerNorm") && isRows(n.inputs[0]!.shape),
        ).length;
      const passes = b.graph.nodes
        .slice(forwardNodes)
        .filter((n) => n.inputs.some((v) => isRows(v.shape))).length;
      return { norms, passes };
    };
    const folded = rowsWide(true);
    const plain = rowsWide(false);
    expect(folded.norms).toBe(plain.norms);
    expect(folded.norms).toBeGreaterThan(0);
    // per norm: x̂ not recomputed (2), no g⊙scale (1), no column sums for scale and shift (2)
    expect(plain.passes - folded.passes).toBeGreaterThanOrEqual(5 * folded.norms);
  });
});
