/**
 * What building a job's training graphs costs, phase by phase: IR build (forward + autodiff +
 * optimizer), ONNX serialisation, and ORT session creation, for the train step and the eval
 * graph. This is what the graph cache (src/engine/train/graph-cache.ts) saves on a hit — the IR
 * build and serialisation; session creation is paid either way.
 *
 *   node --experimental-strip-types bench/graph-build.ts [deit-t|fashion-mnist-mt|…] [--threads 2]
 *
 * Models: the `bench engine` models, and `fashion-mnist-mt<i>`: the fashion-mnist preset's MT
 * hybrid for module i (depth 16, width 64, 4 modules, batch 64).
 */
import { vitClassifierSpec } from "../src/engine/models/classifier.ts";
import type { VitConfig } from "../src/engine/models/vit.ts";
import { toOnnxModel } from "../src/engine/onnx/serialize.ts";
import { EngineSession } from "../src/engine/runtime/session.ts";
import { buildEvalGraph, buildTrainStepGraph } from "../src/engine/train/compile.ts";
import type { TrainSpec } from "../src/engine/train/spec.ts";
import { loadRunConfig } from "../src/incubation/config.ts";
import { buildHybrid, hybridClassifierOptions } from "../src/incubation/hybrid.ts";
import { BENCH_MODELS } from "./engine.ts";

function specFor(name: string): TrainSpec {
  const common = { optimizer: { kind: "adamw", weightDecay: 0.05 } as const, labelSmoothing: 0.1 };
  const bench = BENCH_MODELS[name];
  if (bench) return vitClassifierSpec(bench.cfg, { batch: bench.batch, ...common });
  const mt = /^fashion-mnist-mt(\d)$/.exec(name);
  if (!mt) throw new Error(`unknown model "${name}": ${Object.keys(BENCH_MODELS)} or fashion-mnist-mt<i>`);
  const run = loadRunConfig("fashion-mnist");
  const target: VitConfig = run.target;
  const hybrid = buildHybrid(target, run.meta, run.split, Number(mt[1]));
  return vitClassifierSpec(target, {
    batch: 64,
    dropPathRate: 0.1,
    ...common,
    ...hybridClassifierOptions(hybrid),
  });
}

async function measure(name: string, threads: number) {
  const spec = specFor(name);
  const row: Record<string, number | string> = { model: name };
  for (const [kind, build] of [
    ["train", buildTrainStepGraph],
    ["eval", buildEvalGraph],
  ] as const) {
    let t = performance.now();
    const b = build(spec);
    row[`${kind}_ir_ms`] = Math.round(performance.now() - t);
    t = performance.now();
    const bytes = toOnnxModel(b.graph);
    row[`${kind}_serialize_ms`] = Math.round(performance.now() - t);
    row[`${kind}_mb`] = Math.round(bytes.length / 1e4) / 100;
    t = performance.now();
    const session = await EngineSession.create(bytes, { intraOpNumThreads: threads });
    row[`${kind}_session_ms`] = Math.round(performance.now() - t);
    await session.release();
    // The part of session creation that is ORT's own graph optimisation.
    t = performance.now();
    const plain = await EngineSession.create(bytes, {
      intraOpNumThreads: threads,
      graphOptimizationLevel: "disabled",
    });
    row[`${kind}_session_unoptimized_ms`] = Math.round(performance.now() - t);
    await plain.release();
  }
  return row;
}

const args = process.argv.slice(2);
const threadsAt = args.indexOf("--threads");
const threads = threadsAt >= 0 ? Number(args[threadsAt + 1]) : 2;
const models = args.filter((a, i) => !a.startsWith("--") && (threadsAt < 0 || i !== threadsAt + 1));
for (const m of models.length ? models : ["deit-t", "fashion-mnist-mt1"])
  process.stdout.write(`${JSON.stringify(await measure(m, threads))}\n`);
