/**
 * The ViT in our engine against PyTorch: reference values produced by
 * scripts/reference/make_fixtures.py with Debian's python3-torch, kept in test/fixtures/.
 * Forward values and gradients come from float64 computations; the optimizer trajectories from
 * torch's own float32 AdamW / clip_grad_norm_ / (timm-semantics) LAMB. See test/fixtures/README.md.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { gradients } from "../../src/engine/autodiff/gradients.ts";
import {
  readSafetensors,
  type SafetensorsFile,
  tensorData,
  toFloat32,
} from "../../src/engine/checkpoint/safetensors.ts";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import type { Value } from "../../src/engine/ir/graph.ts";
import { vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { block, type VitConfig, vitForward } from "../../src/engine/models/vit.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import type { OptimizerConfig } from "../../src/engine/optim/types.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import { f32, type HostTensor } from "../../src/engine/runtime/tensor.ts";
import type { LoweringOptions } from "../../src/engine/train/compile.ts";
import { compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { tinyVit } from "./models.ts";

const FIXTURES = join(import.meta.dirname, "../fixtures");

interface Fixture {
  st: SafetensorsFile;
  json: Record<string, unknown> & { max_abs: Record<string, number>; param_names: string[] };
  f32(name: string): Float32Array;
  shape(name: string): number[];
}

function fixture(name: string): Fixture {
  const st = readSafetensors(join(FIXTURES, `${name}.safetensors`));
  const json = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8"));
  const get = (n: string) => {
    const t = st.tensors.get(n);
    if (!t) throw new Error(`${name}: no tensor ${n}`);
    return t;
  };
  return { st, json, f32: (n) => toFloat32(get(n)), shape: (n) => [...get(n).shape] };
}

/** |a − ref| ≤ rel·scale + abs, elementwise, with the worst offender in the message. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, label: string) {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  expect(
    worst,
    `${label}: max |Δ| ${worst} at ${at} (ours ${actual[at]}, torch ${expected[at]})`,
  ).toBeLessThanOrEqual(tol);
}

/** Every parameter's gradient against the fixture's `${key}.<name>`, within 1e-4 of its scale. */
function expectGradients(out: Record<string, HostTensor>, fx: Fixture, key: string) {
  for (const n of fx.json.param_names) {
    const tol = 1e-4 * fx.json.max_abs[`${key}.${n}`]! + 1e-6;
    expectClose(out[`grad.${n}`]!.data as Float32Array, fx.f32(`${key}.${n}`), tol, `${key}.${n}`);
  }
}

const TINY: VitConfig = tinyVit({ mlpRatio: 4, numClasses: 10 });

/** Build a graph whose parameters are plain inputs, run forward + gradients once. */
async function runWithGradients(
  paramShapes: Map<string, number[]>,
  build: (
    b: GraphBuilder,
    param: (n: string) => Value,
  ) => { loss: Value; outputs: Record<string, Value>; wrt?: Value[] },
  feeds: Record<string, HostTensor>,
  lowering: LoweringOptions = {},
): Promise<Record<string, HostTensor>> {
  const b = new GraphBuilder("reference");
  const params = new Map<string, Value>();
  for (const [name, shape] of paramShapes) params.set(name, b.input(`param.${name}`, "float32", shape));
  const param = (n: string) => {
    const v = params.get(n);
    if (!v) throw new Error(`no parameter ${n}`);
    return v;
  };
  const { loss, outputs, wrt = [] } = build(b, param);
  const names = [...params.keys()];
  const grads = gradients(b, loss, [...params.values(), ...wrt]);
  for (const [i, n] of names.entries()) b.output(`grad.${n}`, grads[i]!);
  for (let i = 0; i < wrt.length; i++) b.output(`grad.wrt${i}`, grads[names.length + i]!);
  b.output("loss", loss);
  for (const [k, v] of Object.entries(outputs)) b.output(k, v);
  const session = await EngineSession.create(toOnnxModel(b.graph, lowering), { intraOpNumThreads: 1 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/**
 * Every check below runs three times: with every com.microsoft fused kernel (Gelu, FusedMatMul,
 * SkipLayerNormalization) and each block's second residual add joined to the next block's norm1,
 * with plain opset-17 lowerings, and as the engine defaults build it (com.microsoft Gelu and
 * FusedMatMul, skipLayerNorm as Add + LayerNormalization, the second residual add apart:
 * ForwardOptions.fuseResidualNorm false), so no path is assumed equal to another.
 */
const LOWERINGS: { label: string; lowering: LoweringOptions; fuseResidualNorm: boolean }[] = [
  {
    label: "fused kernels",
    lowering: { contribOps: true, fusedSkipLayerNorm: true },
    fuseResidualNorm: true,
  },
  { label: "unfused", lowering: { contribOps: false }, fuseResidualNorm: true },
  {
    label: "engine defaults, second residual apart from the next norm1",
    lowering: {},
    fuseResidualNorm: false,
  },
];

describe.each(LOWERINGS)("a ViT block against PyTorch (float64 reference), $label", ({ lowering }) => {
  it("matches y, dx and every parameter gradient", async () => {
    const fx = fixture("vit_block");
    const cfg = fx.json.config as {
      dim: number;
      heads: number;
      mlp_ratio: number;
      batch: number;
      tokens: number;
    };
    const vit: VitConfig = { ...TINY, width: cfg.dim, heads: cfg.heads, mlpRatio: cfg.mlp_ratio };
    const { batch, tokens, dim } = cfg;
    const shapes = new Map(
      fx.json.param_names.map((n) => [`blocks.0.${n}`, fx.shape(`param.${n}`)] as const),
    );
    const feeds: Record<string, HostTensor> = {
      x: f32([batch * tokens, dim], fx.f32("x")),
      dy: f32([batch * tokens, dim], fx.f32("dy")),
    };
    for (const n of fx.json.param_names)
      feeds[`param.blocks.0.${n}`] = f32(fx.shape(`param.${n}`), fx.f32(`param.${n}`));
    const out = await runWithGradients(
      shapes,
      (b, param) => {
        const x = b.input("x", "float32", [batch * tokens, dim]);
        const dy = b.input("dy", "float32", [batch * tokens, dim]);
        const y = block(b, vit, param, { x, batch, tokens }, "blocks.0").x;
        return { loss: b.sumAll(b.mul(y, dy)), outputs: { y }, wrt: [x] };
      },
      feeds,
      lowering,
    );
    const tol = (key: string) => 1e-4 * fx.json.max_abs[key]! + 1e-6;
    expectClose(out.y!.data as Float32Array, fx.f32("y"), tol("y"), "y");
    expectClose(out["grad.wrt0"]!.data as Float32Array, fx.f32("dx"), tol("dx"), "dx");
    for (const n of fx.json.param_names) {
      expectClose(
        out[`grad.blocks.0.${n}`]!.data as Float32Array,
        fx.f32(`grad.${n}`),
        tol(`grad.${n}`),
        `grad.${n}`,
      );
    }
  });
});

describe.each(LOWERINGS)(
  "a whole small ViT against PyTorch (float64 reference), $label",
  ({ lowering, fuseResidualNorm }) => {
    const fx = fixture("vit_tiny_step");
    const shapes = new Map(fx.json.param_names.map((n) => [n, fx.shape(`param.${n}`)] as const));
    const feeds = (): Record<string, HostTensor> => {
      const f: Record<string, HostTensor> = {
        images: f32(fx.shape("images"), fx.f32("images")),
        labels: {
          dtype: "int64",
          shape: [4],
          data: tensorData(fx.st.tensors.get("labels")!) as BigInt64Array,
        },
        targets: f32(fx.shape("soft_targets"), fx.f32("soft_targets")),
      };
      for (const n of fx.json.param_names)
        f[`param.${n}`] = f32(fx.shape(`param.${n}`), fx.f32(`param.${n}`));
      return f;
    };
    const tol = (key: string) => 1e-4 * fx.json.max_abs[key]! + 1e-6;

    it("matches logits, the label-smoothed loss and every gradient", async () => {
      const out = await runWithGradients(
        shapes,
        (b, param) => {
          const images = b.input("images", "float32", [4, 3, 8, 8]);
          const logits = vitForward(b, TINY, param, images, undefined, "", { fuseResidualNorm });
          const labels = b.input("labels", "int64", [4]);
          b.input("targets", "float32", [4, 10]);
          return { loss: b.softmaxCrossEntropy(logits, labels, 0.1), outputs: { logits } };
        },
        feeds(),
        lowering,
      );
      expect((out.loss!.data as Float32Array)[0]).toBeCloseTo(fx.json.loss as number, 5);
      expectClose(out.logits!.data as Float32Array, fx.f32("logits"), tol("logits"), "logits");
      expectGradients(out, fx, "grad");
    });

    it("matches the soft-target (Mixup) loss and its gradients", async () => {
      const out = await runWithGradients(
        shapes,
        (b, param) => {
          const images = b.input("images", "float32", [4, 3, 8, 8]);
          const logits = vitForward(b, TINY, param, images, undefined, "", { fuseResidualNorm });
          b.input("labels", "int64", [4]);
          const targets = b.input("targets", "float32", [4, 10]);
          return { loss: b.softCrossEntropy(logits, targets), outputs: {} };
        },
        feeds(),
        lowering,
      );
      expect((out.loss!.data as Float32Array)[0]).toBeCloseTo(fx.json.soft_loss as number, 5);
      expectGradients(out, fx, "soft_grad");
    });
  },
);

describe("fused and unfused lowerings of the whole small ViT (and the residual add apart)", () => {
  it("give the same loss, logits and gradients (float32, to rounding)", async () => {
    const fx = fixture("vit_tiny_step");
    const shapes = new Map(fx.json.param_names.map((n) => [n, fx.shape(`param.${n}`)] as const));
    const feeds: Record<string, HostTensor> = {
      images: f32(fx.shape("images"), fx.f32("images")),
      labels: { dtype: "int64", shape: [4], data: tensorData(fx.st.tensors.get("labels")!) as BigInt64Array },
    };
    for (const n of fx.json.param_names)
      feeds[`param.${n}`] = f32(fx.shape(`param.${n}`), fx.f32(`param.${n}`));
    const run = (lowering: LoweringOptions, fuseResidualNorm = true) =>
      runWithGradients(
        shapes,
        (b, param) => {
          const images = b.input("images", "float32", [4, 3, 8, 8]);
          const logits = vitForward(b, TINY, param, images, undefined, "", { fuseResidualNorm });
          const labels = b.input("labels", "int64", [4]);
          return { loss: b.softmaxCrossEntropy(logits, labels, 0.1), outputs: { logits } };
        },
        feeds,
        lowering,
      );
    const fused = await run({ contribOps: true, fusedSkipLayerNorm: true });
    const tol = (key: string) => 1e-5 * fx.json.max_abs[key]! + 1e-7;
    // Plain opset-17 lowerings; skipLayerNorm as Add + LayerNormalization (the default); and
    // the second residual add kept apart from the next norm1.
    for (const [label, other] of [
      ["unfused", await run({ contribOps: false })],
      ["Add + LayerNormalization", await run({ contribOps: true, fusedSkipLayerNorm: false })],
      ["residual apart", await run({ contribOps: true, fusedSkipLayerNorm: true }, false)],
    ] as const) {
      expect((fused.loss!.data as Float32Array)[0]).toBeCloseTo((other.loss!.data as Float32Array)[0]!, 6);
      expectClose(
        fused.logits!.data as Float32Array,
        other.logits!.data as Float32Array,
        tol("logits"),
        `${label}: logits`,
      );
      for (const n of fx.json.param_names)
        expectClose(
          fused[`grad.${n}`]!.data as Float32Array,
          other[`grad.${n}`]!.data as Float32Array,
          tol(`grad.${n}`),
          `${label}: grad.${n}`,
        );
    }
  });
});

/** Train the tiny ViT on the fixture's batches with our compiled step; compare with torch. */
async function trajectory(
  name: string,
  optimizer: OptimizerConfig,
  lr: number,
  { lowering, fuseResidualNorm }: { lowering: LoweringOptions; fuseResidualNorm: boolean },
  clipGradNorm?: number,
) {
  const fx = fixture(name);
  const steps = fx.json.steps as number;
  const spec = vitClassifierSpec(TINY, {
    batch: 4,
    optimizer,
    labelSmoothing: 0.1,
    fuseResidualNorm,
    ...(clipGradNorm ? { clipGradNorm } : {}),
  });
  // Our decay groups must be the fixture's: no decay on 1-D params and cls/pos embeddings.
  const decayed = spec.params.filter((p) => p.decay ?? p.shape.length >= 2).map((p) => p.name);
  expect(decayed.sort()).toEqual([...(fx.json.decay_params as string[])].sort());
  const initial = new Map(fx.json.param_names.map((n) => [n, fx.f32(`init.${n}`)] as const));
  const trainer = await Trainer.create(compileTrainer(spec, { eval: false, ...lowering }), {
    initial,
    intraOpNumThreads: 1,
  });
  const images = fx.f32("images");
  const labels = tensorData(fx.st.tensors.get("labels")!) as BigInt64Array;
  const per = 4 * 3 * 8 * 8;
  const losses: number[] = [];
  try {
    for (let k = 0; k < steps; k++) {
      const result = await trainer.trainStep(
        {
          images: f32([4, 3, 8, 8], images.slice(k * per, (k + 1) * per)),
          labels: { dtype: "int64", shape: [4], data: labels.slice(k * 4, (k + 1) * 4) },
        },
        lr,
      );
      losses.push(result.loss);
    }
    return { fx, losses, final: trainer.parameters() };
  } finally {
    await trainer.release();
  }
}

/** Final parameters within `tol`, masking the key bias (its true gradient is exactly zero). */
function expectFinalParams(fx: Fixture, final: Map<string, Float32Array>, tol: number) {
  const d = TINY.width;
  for (const n of fx.json.param_names) {
    const ours = Float32Array.from(final.get(n)!);
    const torch = Float32Array.from(fx.f32(`final.${n}`));
    if (n.endsWith("attn.qkv.bias")) {
      ours.fill(0, d, 2 * d);
      torch.fill(0, d, 2 * d);
    }
    expectClose(ours, torch, tol, `final.${n}`);
  }
}

describe.each(LOWERINGS)("optimizer trajectories against PyTorch (float32), $label", (lowering) => {
  it("20 AdamW steps give torch.optim.AdamW's losses and parameters", async () => {
    const { fx, losses, final } = await trajectory(
      "vit_tiny_adamw20",
      { kind: "adamw", weightDecay: 0.05 },
      1e-3,
      lowering,
    );
    expectClose(losses, fx.json.losses as number[], 1e-4, "losses");
    expectFinalParams(fx, final, 1e-4);
  });

  it("20 AdamW steps with global-norm clipping 1.0 match clip_grad_norm_ + AdamW", async () => {
    const { fx, losses, final } = await trajectory(
      "vit_tiny_adamw20_clip",
      { kind: "adamw", weightDecay: 0.05 },
      5e-3,
      lowering,
      1.0,
    );
    expectClose(losses, fx.json.losses as number[], 1e-4, "losses");
    expectFinalParams(fx, final, 2e-4);
  });

  it("5 LAMB steps match timm's Lamb semantics", async () => {
    const { fx, losses, final } = await trajectory(
      "vit_tiny_lamb",
      { kind: "lamb", weightDecay: 0.05, eps: 1e-6, maxGradNorm: 1.0 },
      1e-2,
      lowering,
    );
    expectClose(losses, fx.json.losses as number[], 1e-4, "losses");
    expectFinalParams(fx, final, 1e-4);
  });
});
