/**
 * GELU's backward (`geluGrad`) has three lowerings: ten elementwise passes, nine with the
 * "+1, ·½" folded into one Mean(t, 1), and eight when the incoming gradient arrives already
 * halved (the ½ folded into the GEMM that made it: OpAttrs.geluGrad.halvedGradient, which a ViT's
 * MLP uses). Scaling by ½ is exact in binary floating point, so all three must agree bit for bit —
 * checked here over a range that includes 0, subnormal-free tiny values, and inputs large enough
 * that e^{x²/2} overflows. (Their agreement with PyTorch is checked by the ViT fixtures in
 * vit-reference.test.ts, which run the halved form.)
 */
import { describe, expect, it } from "vitest";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { Rng } from "../../src/engine/rng.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";

async function geluGrad(
  x: Float32Array,
  g: Float32Array,
  compactGeluGrad: boolean,
  halvedGradient = false,
): Promise<Float32Array> {
  const b = new GraphBuilder("gelu_grad");
  const xs = b.input("x", "float32", [x.length]);
  const gs = b.input("g", "float32", [x.length]);
  b.output("dx", b.geluGrad(xs, gs, { halvedGradient }));
  const session = await EngineSession.create(toOnnxModel(b.graph, { compactGeluGrad }), {
    intraOpNumThreads: 1,
  });
  try {
    const out = await session.run({ x: f32([x.length], x), g: f32([g.length], g) });
    return out.dx!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe("geluGrad lowerings", () => {
  it("nine and eight passes give the same bits as ten", async () => {
    const rng = new Rng(3);
    const special = [0, -0, 1e-30, -1e-30, 1, -1, 8, -8, 30, -30, 1e4, -1e4];
    const x = Float32Array.from([...special, ...Array.from({ length: 4096 }, () => 3 * rng.normal())]);
    const g = Float32Array.from(x, () => rng.normal());
    const [compact, ten] = [await geluGrad(x, g, true), await geluGrad(x, g, false)];
    expect(compact.every(Number.isFinite)).toBe(true);
    expect(Array.from(compact)).toEqual(Array.from(ten));
    const halved = await geluGrad(
      x,
      Float32Array.from(g, (v) => v / 2),
      false,
      true,
    );
    expect(Array.from(halved)).toEqual(Array.from(ten));
    // and they are GELU's derivative: Φ(x) + x·φ(x) at a few points, times g
    const phi = (v: number) => Math.exp((-v * v) / 2) / Math.sqrt(2 * Math.PI);
    expect(compact[4]! / g[4]!).toBeCloseTo(0.8413447460685429 + phi(1), 6);
    expect(compact[5]! / g[5]!).toBeCloseTo(1 - 0.8413447460685429 - phi(1), 6);
    expect(compact[8]! / g[8]!).toBeCloseTo(1, 6);
    expect(compact[9]! / g[9]!).toBeCloseTo(0, 6);
  });
});
