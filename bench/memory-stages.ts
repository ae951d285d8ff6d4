/**
 * Where a bench model's peak RSS comes from: resident memory after compiling, after creating the
 * ONNX Runtime sessions, and after each of the first training runs, with ORT's memory arena and
 * memory-pattern planner switched as asked. Each configuration wants its own process.
 *
 *   npx tsx bench/memory-stages.ts [tiny|deit-t] [--loop N] [--mem-arena true|false] [--mem-pattern true|false]
 *     [--variant key=value,…]   (graph keys of `bench engine --compare`: residualNorm, geluGrad, skipLayerNorm, contribOps)
 */

import { vitClassifierSpec } from "../src/engine/models/classifier.ts";
import { Rng } from "../src/engine/rng.ts";
import { compileTrainer, Trainer } from "../src/engine/train/trainer.ts";
import { BENCH_MODELS, formatVariant, parseVariant } from "./engine.ts";
import { randomBatch } from "./random-batch.ts";

const args = process.argv.slice(2);
const flag = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const model = args.find((a) => BENCH_MODELS[a]) ?? "deit-t";
const loop = Number(flag("loop", "0"));
const memArena = flag("mem-arena", "true") === "true";
const memPattern = flag("mem-pattern", "false") === "true";
const variant = parseVariant(flag("variant", ""), "--variant");
const mib = (x: number) => Math.round(x / 2 ** 20);
const report = (stage: string) => {
  const m = process.memoryUsage();
  console.log(
    `${stage.padEnd(10)} RSS ${mib(m.rss)} MB · peak ${Math.round(process.resourceUsage().maxRSS / 1024)} MB · ` +
      `JS heap ${mib(m.heapUsed)} MB · JS-held buffers ${mib(m.external)} MB`,
  );
};

console.log(
  `${model}, loop ${loop || "off"}, memArena ${memArena}, memPattern ${memPattern}, ${formatVariant(variant)}`,
);
report("start");
const { cfg, batch } = BENCH_MODELS[model]!;
const spec = vitClassifierSpec(cfg, {
  batch,
  optimizer: { kind: "adamw", weightDecay: 0.05 },
  labelSmoothing: 0.1,
  fuseResidualNorm: variant.residualNorm,
});
const artifacts = compileTrainer(spec, {
  eval: false,
  loopSteps: loop > 1 ? [loop] : [],
  contribOps: variant.contribOps,
  fusedSkipLayerNorm: variant.skipLayerNorm,
  compactGeluGrad: variant.geluGrad,
});
report("compiled");
const trainer = await Trainer.create(artifacts, { intraOpNumThreads: 2, memArena, memPattern });
report("sessions");
const rng = new Rng(1);
const makeBatch = () => randomBatch(cfg, batch, rng);
const batches = Array.from({ length: Math.max(loop, 1) }, makeBatch);
for (let i = 0; i < 4; i++) {
  if (loop > 1)
    await trainer.trainSteps(
      batches,
      batches.map(() => 1e-4),
    );
  else await trainer.trainStep(batches[0]!, 1e-4);
  report(`run ${i + 1}`);
}
await trainer.release();
