/**
 * Gradients the engine cannot compute are errors that name the op and the values; inputs that
 * are rightly non-differentiable (indices, conditions, shapes) still let gradients through the
 * others, checked against finite differences through ORT.
 */
import { describe, expect, it } from "vitest";
import { gradients } from "../../src/engine/autodiff/gradients.ts";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import { gradCheck } from "./gradcheck.ts";

/** x → a Loop that doubles it `steps` times → its carried output. */
function doubled(b: GraphBuilder, x: ReturnType<GraphBuilder["input"]>) {
  return b.loop(3, [x], (bb, _iter, [c]) => ({ carried: [bb.mul(c!, 2)] })).carried[0]!;
}

describe("gradients through ops without a rule", () => {
  it("a Loop on the path from a differentiated value to the loss is an error naming it", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [4]);
    const y = doubled(b, x);
    y.name = "doubledX";
    const loss = b.sumAll(y);
    expect(() => gradients(b, loss, [x])).toThrow(
      /cannot differentiate through loop \(output %doubledX:float32\[4\].*from input %x:float32\[4\]\).*Loop are not implemented/,
    );
  });

  it("a Loop the gradient does not pass through is fine", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [4]);
    const frozen = b.input("frozen", "float32", [4]);
    // the loop reads only a frozen value, and another loop's output never reaches the loss
    const scale = doubled(b, frozen);
    doubled(b, x);
    const loss = b.sumAll(b.mul(x, scale));
    const [gx] = gradients(b, loss, [x]);
    expect(gx?.shape).toEqual([4]);
  });
});

describe("inputs that are not differentiable", () => {
  it("indices from argMax, a comparison's condition and a shape's size let gradients through", async () => {
    const r = await gradCheck({
      dtype: "float64",
      inputs: [{ name: "x", shape: [3, 4], init: "awayFromZero" }],
      build: (b, [x]) => {
        const leaky = b.where(b.greater(x!, 0), x!, b.mul(x!, 0.1)); // cond: bool
        const picked = b.gather(x!, b.argMax(x!, 0), 0); // indices: int64, from x itself
        const scaled = b.mul(x!, b.dimSize(x!, [0, 1], "float64")); // a size, not data
        return b.concat([b.reshape(leaky, [12]), b.reshape(picked, [16]), b.reshape(scaled, [12])], 0);
      },
    });
    expect(r.probed).toBeGreaterThan(0);
    expect(r.worst!.err, JSON.stringify(r.worst)).toBeLessThanOrEqual(1);
  });

  it("integer labels of a loss need no gradient; stopGradient and sign end the path quietly", () => {
    const b = new GraphBuilder();
    const logits = b.input("logits", "float32", [2, 3]);
    const labels = b.input("labels", "int64", [2]);
    const ce = b.softmaxCrossEntropy(logits, labels);
    const loss = b.add(ce, b.sumAll(b.mul(b.sign(logits), b.stopGradient(logits))));
    const [g] = gradients(b, loss, [logits]);
    expect(g?.shape).toEqual([2, 3]);
  });
});
