/**
 * What activation recomputation (recipe `recomputeActivations`) saves and costs: peak RSS and
 * step time of one training step (forward + backward + AdamW, fp32) with it off and on, in
 * alternating pairs (bench/pairs.ts), each side in its own process so peak RSS is its own.
 *
 *   npx tsx bench/recompute.ts [deep-48|deit-t] [--pairs 3] [--steps 4] [--warmup 1] [--threads 2] [--json]
 *
 * Ratios are on/off per pair: RSS below 1 is memory saved, time above 1 is the cost.
 */
import { spawnSync } from "node:child_process";
import { vitClassifierSpec } from "../src/engine/models/classifier.ts";
import { VIT_DEFAULTS, type VitConfig } from "../src/engine/models/vit.ts";
import { Rng } from "../src/engine/rng.ts";
import { trainingEnv } from "../src/engine/runtime/malloc-tuning.ts";
import { compileTrainer, Trainer } from "../src/engine/train/trainer.ts";
import { BENCH_MODELS } from "./engine.ts";
import { alternate, endLoad, pairRatios, round3, runContext, type SideRun, spread } from "./pairs.ts";
import { randomBatch } from "./random-batch.ts";

/** The models this bench knows: a deep narrow ViT (where activations dominate) and deit-t. */
const MODELS: Record<string, { cfg: VitConfig; batch: number }> = {
  "deep-48": {
    cfg: { ...VIT_DEFAULTS, imageSize: 32, patchSize: 4, width: 64, depth: 48, heads: 4, numClasses: 10 },
    batch: 64,
  },
  "deit-t": BENCH_MODELS["deit-t"]!,
};

interface Side extends SideRun {
  recompute: boolean;
  step_ms_median: number;
  /** resident memory once the sessions exist, before the first step: what activations add to */
  rss_before_steps_mb: number;
}

const args = process.argv.slice(2);
const flag = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const model = args.find((a) => MODELS[a]) ?? "deep-48";
const threads = Number(flag("threads", "2"));
const steps = Number(flag("steps", "4"));
const warmup = Number(flag("warmup", "1"));

async function measure(recompute: boolean): Promise<Side> {
  const { cfg, batch } = MODELS[model]!;
  const spec = vitClassifierSpec(cfg, {
    batch,
    optimizer: { kind: "adamw", weightDecay: 0.05 },
    labelSmoothing: 0.1,
    recomputeActivations: recompute,
  });
  const trainer = await Trainer.create(compileTrainer(spec, { eval: false }), { intraOpNumThreads: threads });
  const rssBefore = process.memoryUsage().rss / 2 ** 20;
  const rng = new Rng(1);
  const data = randomBatch(cfg, batch, rng);
  for (let i = 0; i < warmup; i++) await trainer.trainStep(data, 1e-4);
  const ms: number[] = [];
  for (let i = 0; i < steps; i++) {
    const start = performance.now();
    await trainer.trainStep(data, 1e-4);
    ms.push(performance.now() - start);
  }
  await trainer.release();
  const stepMs = spread(ms).median;
  return {
    recompute,
    steps_per_s: round3(1000 / stepMs),
    step_ms_median: Math.round(stepMs),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    rss_before_steps_mb: Math.round(rssBefore),
  };
}

function child(recompute: boolean): Side {
  const passed = args.filter((a) => a !== "--json");
  const run = spawnSync(
    process.execPath,
    [...process.execArgv, import.meta.filename, ...passed, "--child", recompute ? "on" : "off"],
    // The glibc setting training jobs run with (engine/runtime/malloc-tuning.ts).
    { encoding: "utf8", maxBuffer: 1 << 20, env: trainingEnv() },
  );
  if (run.status !== 0) throw new Error(`recompute=${recompute} run failed: ${run.stderr}`);
  return JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Side;
}

const childSide = flag("child", "");
if (childSide) {
  console.log(JSON.stringify(await measure(childSide === "on")));
} else {
  const context = runContext();
  const json = args.includes("--json");
  const pairs = alternate(
    Number(flag("pairs", "3")),
    () => child(false),
    () => child(true),
    (p, i) => {
      if (!json)
        console.log(
          `pair ${i + 1}: off ${p.a.step_ms_median} ms, peak ${p.a.peak_rss_mb} MB (${p.a.rss_before_steps_mb} before steps) · ` +
            `on ${p.b.step_ms_median} ms, peak ${p.b.peak_rss_mb} MB (${p.b.rss_before_steps_mb} before steps)`,
        );
    },
  );
  const r = pairRatios(pairs, "b");
  const fmt = (s: { median: number; min: number; max: number }) =>
    `${round3(s.median)} (${round3(s.min)}–${round3(s.max)})`;
  // speed ratio on/off inverted: step time on/off, the cost of recomputing.
  const time = spread(pairs.map((p) => p.b.step_ms_median / p.a.step_ms_median));
  const summary = {
    model,
    ...MODELS[model]!.cfg,
    batch: MODELS[model]!.batch,
    threads,
    steps,
    pairs: pairs.map((p) => ({ off: p.a, on: p.b })),
    peak_rss_on_over_off: r.rss,
    step_time_on_over_off: time,
    context: { ...context, loadavg_1m_end: endLoad() },
  };
  if (json) console.log(JSON.stringify(summary));
  else
    console.log(
      `${model}: peak RSS on/off ${fmt(r.rss)}, step time on/off ${fmt(time)} over ${pairs.length} pairs ` +
        `(${context.machine}, ${context.date}, ${context.commit}, load ${context.loadavg_1m_start} → ${summary.context.loadavg_1m_end})`,
    );
}
