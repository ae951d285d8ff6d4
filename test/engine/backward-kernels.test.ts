/**
 * The backward takes no kernel it does not need: a bias gradient is one column sum straight to
 * the bias's shape (no Reshape after it, in the IR or in the lowered ONNX), a reshape's gradient
 * reads through a keepDims sum or another reshape, and LayerNorm's row means carry their 1/d in
 * the GEMV's column instead of a scaling pass. These tests count nodes; the values are checked
 * against finite differences (vjp.test.ts) and PyTorch (vit-reference.test.ts).
 */
import { describe, expect, it } from "vitest";
import { gradients } from "../../src/engine/autodiff/gradients.ts";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import type { Node } from "../../src/engine/ir/graph.ts";
import { vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { onnx } from "../../src/engine/onnx/proto.ts";
import { toOnnxModel } from "../../src/engine/onnx/serialize.ts";
import { tinyVit } from "./models.ts";
import { specGradientGraph } from "./spec-gradients.ts";

/** Backward nodes (built after `from`) of one op. */
const backward = (b: GraphBuilder, from: number, op: string): Node[] =>
  b.graph.nodes.slice(from).filter((n) => n.op === op);

describe("backward kernels", () => {
  it("a bias gradient is one column sum to the bias's shape, lowered to one MatMul", () => {
    const b = new GraphBuilder("bias");
    const x = b.input("x", "float32", [8, 4]);
    const w = b.input("w", "float32", [3, 4]);
    const bias = b.input("bias", "float32", [3]);
    const y = b.add(b.gemm(x, w, undefined, { transB: true }), bias);
    const from = b.graph.nodes.length;
    const [, gBias] = gradients(b, b.sumAll(b.mul(y, y)), [w, bias]);
    b.output("gBias", gBias!);
    expect(gBias!.producer!.op).toBe("reduceSum");
    expect(gBias!.shape).toEqual([3]);
    expect(backward(b, from, "reshape")).toHaveLength(0);

    const model = onnx.ModelProto.decode(toOnnxModel(b.graph));
    const nodes = model.graph!.node!;
    expect(nodes.filter((n) => n.opType === "Reshape")).toHaveLength(0);
    expect(nodes.find((n) => n.output!.includes("gBias"))!.opType).toBe("MatMul");
  });

  it("a reshape's gradient reads through a keepDims sum and through another reshape", () => {
    const b = new GraphBuilder("reshape");
    const x = b.input("x", "float32", [5, 6]);
    const scale = b.input("scale", "float32", [6]);
    const p = b.input("p", "float32", [6]);
    // scale broadcast over rows as [1, 6] (the sum comes back keepDims); p twice reshaped
    const y = b.mul(b.mul(x, b.reshape(scale, [1, 6])), b.reshape(b.reshape(p, [2, 3]), [1, 6]));
    const from = b.graph.nodes.length;
    const [gScale, gP] = gradients(b, b.sumAll(b.mul(y, y)), [scale, p]);
    b.output("gScale", gScale!);
    b.output("gP", gP!);
    expect(gScale!.producer!.op).toBe("reduceSum");
    expect((gScale!.producer as Node<"reduceSum">).attrs.keepDims).toBe(false);
    const reshapes = backward(b, from, "reshape");
    // p's gradient: [1, 6] sum → [6] in one reduceSum (no reshape), so none is left at all
    expect(reshapes.filter((n) => n.inputs[0]!.producer?.op === "reshape")).toHaveLength(0);
    expect(reshapes.filter((n) => n.inputs[0]!.producer?.op === "reduceSum")).toHaveLength(0);
  });

  it("LayerNorm's backward takes its row means from GEMVs with 1/d in the column", () => {
    for (const affine of [false, true]) {
      const b = new GraphBuilder("ln");
      const x = b.input("x", "float32", [7, 12]);
      const scale = b.input("scale", "float32", [12]);
      const shift = b.input("shift", "float32", [12]);
      const y = affine ? b.layerNorm(x, scale, shift) : b.layerNorm(x, undefined, undefined);
      const from = b.graph.nodes.length;
      gradients(b, b.sumAll(b.mul(y, b.input("w", "float32", [7, 12]))), affine ? [x, scale, shift] : [x]);
      const rowMeans = backward(b, from, "matmul").filter((n) => n.outputs[0]!.shape.join() === "7,1");
      expect(rowMeans, `affine ${affine}`).toHaveLength(2);
      // nothing scales a [7, 1] row statistic on its own
      const scaled = backward(b, from, "mul").filter((n) => n.outputs[0]!.shape.join() === "7,1");
      expect(scaled, `affine ${affine}`).toHaveLength(0);
    }
  });

  it("a whole ViT's backward has no reshape of a sum or of a reshape", () => {
    const spec = vitClassifierSpec(tinyVit(), {
      batch: 2,
      optimizer: { kind: "adamw", weightDecay: 0.05 },
      labelSmoothing: 0.1,
    });
    const { b, forwardNodes } = specGradientGraph(spec);
    const reshapesOf = (op: string) =>
      backward(b, forwardNodes, "reshape").filter((n) => n.inputs[0]!.producer?.op === op);
    expect(reshapesOf("reduceSum")).toHaveLength(0);
    expect(reshapesOf("reshape")).toHaveLength(0);
  });
});
