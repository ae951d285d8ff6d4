/**
 * Optimizer graphs against hand-written TypeScript references of the torch / timm update rules,
 * on a model whose gradients are known in closed form:
 *   loss = Σ w⊙c + ½Σ w² + ½Σ (b − 1)²   ⇒   dL/dw = c + w,  dL/db = b − 1
 * w (2-D) is in the weight-decay group, b (1-D) is not.
 */
import { describe, expect, it } from "vitest";
import type { OptimizerConfig } from "../../src/engine/optim/types.ts";
import type { TrainSpec } from "../../src/engine/train/spec.ts";
import { compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";

const W0 = [0.5, -1.0, 0.25, 2.0, -0.75, 0.1];
const B0 = [0.3, -0.2, 1.5];
const C = [1, -2, 0.5, 0.25, 3, -1];

function spec(optimizer: OptimizerConfig, clipGradNorm?: number): TrainSpec {
  return {
    params: [
      { name: "w", shape: [2, 3] },
      { name: "b", shape: [3] },
    ],
    inputs: [{ name: "c", dtype: "float32", shape: [2, 3] }],
    forward: ({ b, param, input }) => {
      const w = param("w");
      const bias = param("b");
      const bm1 = b.sub(bias, 1);
      const loss = b.add(
        b.add(b.sumAll(b.mul(w, input("c"))), b.mul(b.sumAll(b.mul(w, w)), 0.5)),
        b.mul(b.sumAll(b.mul(bm1, bm1)), 0.5),
      );
      return { loss };
    },
    optimizer,
    clipGradNorm,
  };
}

const batch = { c: { dtype: "float32" as const, shape: [2, 3], data: Float32Array.from(C) } };

async function run(optimizer: OptimizerConfig, lrs: number[], clip?: number) {
  const trainer = await Trainer.create(compileTrainer(spec(optimizer, clip), { eval: false }), {
    initial: new Map([
      ["w", Float32Array.from(W0)],
      ["b", Float32Array.from(B0)],
    ]),
  });
  const results = [];
  for (const lr of lrs) results.push(await trainer.trainStep(batch, lr));
  const p = trainer.parameters();
  await trainer.release();
  return { w: [...p.get("w")!], b: [...p.get("b")!], results };
}

type Tensors = { w: number[]; b: number[] };
const grads = ({ w, b }: Tensors): Tensors => ({ w: w.map((x, i) => C[i]! + x), b: b.map((x) => x - 1) });
const norm = (xs: number[]) => Math.sqrt(xs.reduce((a, x) => a + x * x, 0));

function expectClose(actual: number[], expected: number[], tol = 2e-6) {
  expect(actual.length).toBe(expected.length);
  for (const [i, a] of actual.entries())
    expect(Math.abs(a - expected[i]!), `element ${i}: ${a} vs ${expected[i]}`).toBeLessThan(tol);
}

/** Parameters at W0/B0 and zeroed first and second moments: where every reference update starts. */
const startState = () => ({
  p: { w: [...W0], b: [...B0] } as Tensors,
  m: { w: W0.map(() => 0), b: B0.map(() => 0) } as Tensors,
  v: { w: W0.map(() => 0), b: B0.map(() => 0) } as Tensors,
});

describe("optimizer update rules", () => {
  it("AdamW matches torch.optim.AdamW's formula (decoupled decay on the decay group only)", async () => {
    const [b1, b2, eps, wd] = [0.9, 0.999, 1e-8, 0.05];
    const lrs = [0.1, 0.05, 0.02];
    const { p, m, v } = startState();
    lrs.forEach((lr, k) => {
      const t = k + 1;
      const g = grads(p);
      for (const key of ["w", "b"] as const) {
        for (let i = 0; i < p[key].length; i++) {
          if (key === "w") p.w[i]! *= 1 - lr * wd;
          m[key][i] = m[key][i]! + (g[key][i]! - m[key][i]!) * (1 - b1);
          v[key][i] = b2 * v[key][i]! + (1 - b2) * g[key][i]! ** 2;
          const denom = Math.sqrt(v[key][i]!) / Math.sqrt(1 - b2 ** t) + eps;
          p[key][i]! -= (lr / (1 - b1 ** t)) * (m[key][i]! / denom);
        }
      }
    });
    const got = await run({ kind: "adamw", beta1: b1, beta2: b2, eps, weightDecay: wd }, lrs);
    expectClose(got.w, p.w);
    expectClose(got.b, p.b);
  });

  it("LAMB matches timm's Lamb (global clip, per-tensor trust ratio on decayed params)", async () => {
    const [b1, b2, eps, wd, maxGradNorm] = [0.9, 0.999, 1e-6, 0.1, 1.0];
    const lrs = [0.1, 0.1];
    const { p, m, v } = startState();
    lrs.forEach((lr, k) => {
      const t = k + 1;
      const g = grads(p);
      const gn = norm([...g.w, ...g.b]);
      const clip = Math.max(gn / maxGradNorm, 1);
      for (const key of ["w", "b"] as const) {
        const u = p[key].map((_, i) => {
          const gi = g[key][i]! / clip;
          m[key][i] = b1 * m[key][i]! + (1 - b1) * gi;
          v[key][i] = b2 * v[key][i]! + (1 - b2) * gi * gi;
          const denom = Math.sqrt(v[key][i]!) / Math.sqrt(1 - b2 ** t) + eps;
          return m[key][i]! / (1 - b1 ** t) / denom + (key === "w" ? wd * p[key][i]! : 0);
        });
        let trust = 1;
        if (key === "w") {
          const [wn, un] = [norm(p.w), norm(u)];
          trust = wn > 0 && un > 0 ? wn / un : 1;
        }
        p[key] = p[key].map((x, i) => x - lr * trust * u[i]!);
      }
    });
    const got = await run({ kind: "lamb", beta1: b1, beta2: b2, eps, weightDecay: wd, maxGradNorm }, lrs);
    expectClose(got.w, p.w);
    expectClose(got.b, p.b);
  });

  it("SGD with Nesterov momentum and L2 decay matches torch.optim.SGD", async () => {
    const [mu, wd] = [0.9, 0.01];
    const lrs = [0.1, 0.1, 0.05];
    const p: Tensors = { w: [...W0], b: [...B0] };
    const buf: Tensors = { w: W0.map(() => 0), b: B0.map(() => 0) };
    for (const lr of lrs) {
      const g = grads(p);
      for (const key of ["w", "b"] as const)
        p[key] = p[key].map((x, i) => {
          const gi = g[key][i]! + (key === "w" ? wd * x : 0);
          buf[key][i] = mu * buf[key][i]! + gi;
          return x - lr * (gi + mu * buf[key][i]!);
        });
    }
    const got = await run({ kind: "sgd", momentum: mu, nesterov: true, weightDecay: wd }, lrs);
    expectClose(got.w, p.w);
    expectClose(got.b, p.b);
  });

  it("global-norm clipping scales the gradient to max_norm and reports the unclipped norm", async () => {
    const maxNorm = 0.5;
    const lr = 0.1;
    const g = grads({ w: W0, b: B0 });
    const gn = norm([...g.w, ...g.b]);
    expect(gn).toBeGreaterThan(maxNorm);
    const coef = Math.min(1, maxNorm / (gn + 1e-6));
    const got = await run({ kind: "sgd", momentum: 0 }, [lr], maxNorm);
    expect(got.results[0]!.gradNorm).toBeCloseTo(gn, 5);
    expectClose(
      got.w,
      W0.map((x, i) => x - lr * coef * g.w[i]!),
    );
    expectClose(
      got.b,
      B0.map((x, i) => x - lr * coef * g.b[i]!),
    );
    // the step moved the parameters by exactly lr · max_norm
    const delta = norm([...got.w.map((x, i) => x - W0[i]!), ...got.b.map((x, i) => x - B0[i]!)]);
    expect(delta).toBeCloseTo(lr * maxNorm, 5);
  });

  it("no clipping when the norm is below max_norm", async () => {
    const got = await run({ kind: "sgd", momentum: 0 }, [0.1], 1e6);
    const g = grads({ w: W0, b: B0 });
    expectClose(
      got.w,
      W0.map((x, i) => x - 0.1 * g.w[i]!),
    );
  });
});
