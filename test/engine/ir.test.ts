/**
 * Graph IR: shape inference and its errors, symbolic dims, the text dump, loop bodies with
 * captured values, and serialisation corner cases, run through ORT.
 */
import { describe, expect, it } from "vitest";
import { gradients } from "../../src/engine/autodiff/gradients.ts";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import { dumpGraph } from "../../src/engine/ir/dump.ts";
import { divDim, mulDims, numel } from "../../src/engine/ir/shape.ts";
import { onnx } from "../../src/engine/onnx/proto.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { EngineSession } from "../../src/engine/runtime/session.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";

describe("shapes", () => {
  it("symbolic dims multiply and divide canonically", () => {
    expect(mulDims("N", 16)).toBe("16*N");
    expect(mulDims(16, "N")).toBe("16*N");
    expect(numel(["N", 4, "T"])).toBe("4*N*T");
    expect(divDim("16*N", 4)).toBe("4*N");
    expect(divDim("16*N", "N")).toBe(16);
    expect(divDim("N", 3)).toBeUndefined();
  });

  it("broadcasting and matmul infer shapes, symbolic batch included", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["N", 16, 64]);
    const w = b.input("w", "float32", [128, 64]);
    const y = b.matmul(x, w, { transB: true });
    expect(y.shape).toEqual(["N", 16, 128]);
    expect(b.reshape(y, [-1, 128]).shape).toEqual(["16*N", 128]);
    expect(b.add(y, b.input("bias", "float32", [128])).shape).toEqual(["N", 16, 128]);
    expect(b.reduceMean(y, [1], true).shape).toEqual(["N", 1, 128]);
  });

  it("errors name the op and the operand types", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 3]);
    expect(() => b.matmul(x, b.input("w", "float32", [4, 5]))).toThrow(
      "matmul(float32[2,3], float32[4,5]): inner dims differ: [2,3] × [4,5] (3 vs 4)",
    );
    expect(() => b.add(x, b.input("y", "float32", [4]))).toThrow(
      /^add\(float32\[2,3\], float32\[4\]\): shapes/,
    );
    expect(() => b.add(x, b.input("z", "float64", [3]))).toThrow(
      /add\(.*\): dtypes differ: float32 vs float64/,
    );
    expect(() => b.reshape(x, [4, -1])).toThrow(/reshape: cannot reshape \[2,3\] to \[4,-1\]/);
    expect(() => b.softmaxCrossEntropy(x, b.input("l", "float32", [2]))).toThrow(/labels must be int64\[2\]/);
    expect(() => b.transpose(x, [0, 0])).toThrow(/not a permutation/);
  });
});

describe("dumpGraph", () => {
  it("prints inputs, constants, nodes with attributes and outputs", () => {
    const b = new GraphBuilder("demo");
    const x = b.input("x", "float32", ["N", 4]);
    const y = b.mul(b.softmax(x, -1), 2);
    b.output("y", y);
    const text = dumpGraph(b.graph);
    expect(text).toContain("graph demo: 1 inputs, 1 constants, 2 nodes, 1 outputs");
    expect(text).toContain("input  %x:float32[N,4]");
    expect(text).toMatch(/= softmax\(%x\) \{axis: -1\}/);
    expect(text).toMatch(/output y = %\d+:float32\[N,4\]/);
  });
});

describe("serialisation", () => {
  it("outputs that are inputs, constants or repeated values are routed through Identity", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    const y = b.exp(x);
    b.output("same", x);
    b.output("y1", y);
    b.output("y2", y);
    b.output("c", b.scalar(3));
    const s = await EngineSession.create(toOnnxModel(b.graph));
    const out = await s.run({ x: f32([2], [0, 1]) });
    expect([...out.same!.data]).toEqual([0, 1]);
    expect(out.y2!.data).toEqual(out.y1!.data);
    expect(out.c!.data[0]).toBe(3);
    await s.release();
  });

  it("a loop body reads outer tensors by capture and scans per-iteration values", async () => {
    const b = new GraphBuilder();
    const xs = b.input("xs", "float32", [3, 2]); // one row per iteration
    const acc0 = b.input("acc0", "float32", [2]);
    const scale = b.input("scale", "float32", []);
    const { carried, scans } = b.loop(3, [acc0], (bb, iter, [acc]) => {
      const row = bb.gather(xs, iter, 0);
      const next = bb.add(acc!, bb.mul(row, scale));
      return { carried: [next], scans: [bb.sumAll(next)] };
    });
    b.output("acc", carried[0]!);
    b.output("sums", scans[0]!);
    expect(scans[0]!.shape).toEqual([3]);
    expect(dumpGraph(b.graph)).toContain("capture");
    const s = await EngineSession.create(toOnnxModel(b.graph));
    const out = await s.run({
      xs: f32([3, 2], [1, 2, 3, 4, 5, 6]),
      acc0: f32([2], [0, 0]),
      scale: f32([], [10]),
    });
    expect([...out.acc!.data]).toEqual([90, 120]);
    expect([...out.sums!.data]).toEqual([30, 100, 210]);
    await s.release();
  });

  it("autodiff skips branches the loss does not need", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [4]);
    const w = b.input("w", "float32", [4]);
    const used = b.mul(x, w);
    b.exp(b.exp(b.exp(w))); // a branch the loss never sees
    const loss = b.sumAll(used);
    const before = b.graph.nodes.length;
    const [gw, gx] = gradients(b, loss, [w, x]);
    expect(gw).toBeDefined();
    expect(gx).toBeDefined();
    const added = b.graph.nodes.slice(before).map((n) => n.op);
    expect(added).not.toContain("exp");
    expect(added.sort()).toEqual(["expand", "mul", "mul"]);
  });

  it("a linear layer's weight gradient over [B,N,D] inputs is one GEMM on the flattened batch", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [8, 16, 32]);
    const w = b.input("w", "float32", [64, 32]);
    const loss = b.sumAll(b.matmul(x, w, { transB: true }));
    const before = b.graph.nodes.length;
    const [gw] = gradients(b, loss, [w]);
    const backward = b.graph.nodes.slice(before);
    expect(gw!.producer!.op).toBe("matmul");
    expect(gw!.producer!.inputs.map((v) => v.shape)).toEqual([
      [128, 64],
      [128, 32],
    ]);
    expect(backward.filter((n) => n.op === "matmul")).toHaveLength(1);
    expect(backward.some((n) => n.op === "reduceSum")).toBe(false);
  });

  it("frozen values get no gradient; stopGradient blocks it", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [4]);
    const frozen = b.input("frozen", "float32", [4]);
    const loss = b.sumAll(b.mul(b.stopGradient(b.exp(x)), frozen));
    expect(gradients(b, loss, [x])).toEqual([undefined]);
  });

  it("models encode as ONNX opset 17 with com.microsoft only when used", () => {
    const b = new GraphBuilder();
    b.output("y", b.gelu(b.input("x", "float32", [3])));
    const m = onnx.ModelProto.decode(toOnnxModel(b.graph));
    expect(m.opsetImport.map((o) => `${o.domain}:${o.version}`).sort()).toEqual([":17", "com.microsoft:1"]);
    expect((m.graph?.node ?? []).map((n) => n.opType)).toEqual(["Gelu"]);
  });
});
