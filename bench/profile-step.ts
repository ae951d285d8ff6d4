/**
 * Profile one compiled train step of a bench model: ONNX node counts per op type, and ONNX
 * Runtime's per-node profile (enableProfiling) aggregated per op type, plus the slowest nodes.
 *
 *   npx tsx bench/profile-step.ts [tiny|deit-t] [--steps N] [--threads T] [--top K] [--no-profile] [--no-contrib]
 *     [--variant key=value,…]
 *
 * --no-contrib lowers without com.microsoft kernels (as the `contribOps=false` engine variant);
 * --variant takes the graph keys of `bench engine --compare` (contribOps, skipLayerNorm, residualNorm, foldNorm, perHead, geluGrad).
 *
 * Timing (steps/s median over repeats) runs without profiling; the profile run is separate.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { vitClassifierSpec } from "../src/engine/models/classifier.ts";
import { stateSlots } from "../src/engine/optim/types.ts";
import { Rng } from "../src/engine/rng.ts";
import { buildTrainStepGraph, compileTrainStep } from "../src/engine/train/compile.ts";
import { FlatLayout } from "../src/engine/train/params.ts";
import { NAMES } from "../src/engine/train/spec.ts";
import { BENCH_MODELS, foldMode, parseVariant, trainStepFlops } from "./engine.ts";
import { numberFlag } from "./number-flag.ts";

const args = process.argv.slice(2);
const model = args.find((a) => !a.startsWith("--") && BENCH_MODELS[a]) ?? "deit-t";
const opt = (name: string, fallback: number) => numberFlag(args, name, fallback);
const steps = opt("steps", 20);
const threads = opt("threads", 2);
const top = opt("top", 25);
const repeats = opt("repeats", 3);
const profile = !args.includes("--no-profile");
const variant = parseVariant(
  args.includes("--variant") ? args[args.indexOf("--variant") + 1]! : "",
  "--variant",
);

const { cfg, batch } = BENCH_MODELS[model]!;
const spec = vitClassifierSpec(cfg, {
  batch,
  optimizer: { kind: "adamw", weightDecay: 0.05 },
  labelSmoothing: 0.1,
  fuseResidualNorm: variant.residualNorm,
  foldNormAffine: foldMode(variant.foldNorm),
  attentionPerHead: variant.perHead,
});
const compiled = compileTrainStep(spec, {
  contribOps: args.includes("--no-contrib") ? false : variant.contribOps,
  fusedSkipLayerNorm: variant.skipLayerNorm,
  compactGeluGrad: variant.geluGrad,
});

// ---- IR node counts --------------------------------------------------------------------------
const irCounts = new Map<string, number>();
for (const n of buildTrainStepGraph(spec).graph.nodes) irCounts.set(n.op, (irCounts.get(n.op) ?? 0) + 1);

const layout = new FlatLayout(spec.params);
const rng = new Rng(1);
const images = new Float32Array(batch * cfg.channels * cfg.imageSize ** 2).map(() => rng.normal());
const labels = BigInt64Array.from({ length: batch }, () => BigInt(rng.int(cfg.numClasses)));
const init = layout.initialise(new Rng(0));
const P = layout.trainableSize;
const feeds: Record<string, ort.Tensor> = {
  params: new ort.Tensor("float32", init.trainable, [P]),
  ...Object.fromEntries(
    stateSlots(spec.optimizer).map((slot) => [
      NAMES.state(slot),
      new ort.Tensor("float32", new Float32Array(P), [P]),
    ]),
  ),
  step: new ort.Tensor("int64", BigInt64Array.of(1n), []),
  lr: new ort.Tensor("float32", Float32Array.of(1e-4), []),
  images: new ort.Tensor("float32", images, [batch, cfg.channels, cfg.imageSize, cfg.imageSize]),
  labels: new ort.Tensor("int64", labels, [batch]),
};

const baseOpts: ort.InferenceSession.SessionOptions = {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
  intraOpNumThreads: threads,
  logSeverityLevel: 3,
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(): Promise<number> {
  const s = await ort.InferenceSession.create(compiled.model, baseOpts);
  for (const k of s.inputNames) if (!feeds[k]) throw new Error(`no feed for ${k}`);
  for (let i = 0; i < 3; i++) await s.run(feeds);
  const per: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await s.run(feeds);
    per.push((performance.now() - t0) / steps);
  }
  await s.release();
  return median(per);
}

const ms = await time();
const flops = trainStepFlops(cfg, batch);
console.log(
  `${model}: ${(1000 / ms).toFixed(3)} steps/s, ${ms.toFixed(2)} ms/step, ${((flops / (ms / 1000)) * 1e-9).toFixed(1)} GFLOP/s, ` +
    `IR nodes ${compiled.irNodes}, model ${(compiled.model.length / 1024).toFixed(0)} KiB`,
);
console.log(
  `IR ops: ${[...irCounts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")}`,
);

if (profile) {
  const prefix = join(tmpdir(), `ort-prof-${process.pid}`);
  const s = await ort.InferenceSession.create(compiled.model, {
    ...baseOpts,
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  for (let i = 0; i < 3 + steps; i++) await s.run(feeds);
  s.endProfiling();
  await s.release();
  const dir = tmpdir();
  const base = `ort-prof-${process.pid}`;
  const found = readdirSync(dir).filter((f) => f.startsWith(base) && f.endsWith(".json"));
  if (!found.length) throw new Error(`no profile file ${prefix}*.json`);
  const path = join(dir, found[0]!);
  const events = JSON.parse(readFileSync(path, "utf8")) as {
    cat: string;
    name: string;
    dur: number;
    args?: { op_name?: string; input_type_shape?: Record<string, number[]>[] };
  }[];
  rmSync(path);
  const nodeEvents = events.filter((e) => e.cat === "Node" && e.name.endsWith("_kernel_time"));
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run");
  const measuredRuns = runs.slice(3);
  const runUs = measuredRuns.reduce((a, e) => a + e.dur, 0) / measuredRuns.length;
  // Nodes of the last `steps` runs only.
  const perRun = nodeEvents.length / runs.length;
  const last = nodeEvents.slice(nodeEvents.length - perRun * steps);
  const byOp = new Map<string, { us: number; n: number }>();
  const byNode = new Map<string, { us: number; op: string; shapes: string }>();
  for (const e of last) {
    const op = e.args?.op_name ?? "?";
    const o = byOp.get(op) ?? { us: 0, n: 0 };
    o.us += e.dur / steps;
    o.n += 1 / steps;
    byOp.set(op, o);
    const name = e.name.replace(/_kernel_time$/, "");
    const shapes = (e.args?.input_type_shape ?? [])
      .map((t) => `[${Object.values(t)[0]?.join(",")}]`)
      .join(" ");
    const nn = byNode.get(name) ?? { us: 0, op, shapes };
    nn.us += e.dur / steps;
    byNode.set(name, nn);
  }
  const total = [...byOp.values()].reduce((a, o) => a + o.us, 0);
  console.log(
    `\nprofile: model_run ${(runUs / 1000).toFixed(2)} ms, sum of kernels ${(total / 1000).toFixed(2)} ms, ` +
      `${perRun.toFixed(0)} kernels/run (after ORT optimisation)`,
  );
  console.log("op type                      count    ms/step    share");
  for (const [op, o] of [...byOp.entries()].sort((a, b) => b[1].us - a[1].us))
    console.log(
      `${op.padEnd(28)} ${o.n.toFixed(0).padStart(5)} ${(o.us / 1000).toFixed(3).padStart(10)} ${((100 * o.us) / total).toFixed(1).padStart(7)}%`,
    );
  console.log(`\ntop ${top} nodes`);
  const skip = new Set((args[args.indexOf("--skip") + 1] ?? "").split(","));
  const listed = [...byNode.entries()].filter(([, o]) => !args.includes("--skip") || !skip.has(o.op));
  for (const [name, o] of listed.sort((a, b) => b[1].us - a[1].us).slice(0, top))
    console.log(
      `${(o.us / 1000).toFixed(3).padStart(8)} ms  ${o.op.padEnd(20)} ${name.padEnd(28)} ${o.shapes}`,
    );
}
