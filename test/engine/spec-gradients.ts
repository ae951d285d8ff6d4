/**
 * A spec's loss and d loss / d trainable parameter as graph outputs, for tests that compare
 * gradient graphs: the spec's forward with every parameter its own graph input (`p.<name>`),
 * then `gradients` (with recomputation when asked).
 */
import { gradients } from "../../src/engine/autodiff/gradients.ts";
import { GraphBuilder } from "../../src/engine/ir/builder.ts";
import type { TrainSpec } from "../../src/engine/train/spec.ts";

export function specGradientGraph(spec: TrainSpec, opts: { recompute?: boolean } = {}) {
  const b = new GraphBuilder("grads");
  const params = new Map(spec.params.map((p) => [p.name, b.input(`p.${p.name}`, "float32", p.shape)]));
  const batch = new Map(spec.inputs.map((i) => [i.name, b.input(i.name, i.dtype, i.shape)]));
  const result = spec.forward({
    b,
    training: true,
    param: (name) => params.get(name)!,
    input: (name) => batch.get(name)!,
  });
  /** nodes before this index are the forward pass */
  const forwardNodes = b.graph.nodes.length;
  const trainable = spec.params.filter((p) => p.trainable !== false).map((p) => p.name);
  const grads = gradients(
    b,
    result.loss,
    trainable.map((n) => params.get(n)!),
    { recompute: opts.recompute ?? false },
  );
  b.output("loss", result.loss);
  for (const [i, g] of grads.entries()) b.output(`grad.${trainable[i]}`, g!);
  return { b, forwardNodes, trainable };
}
