/**
 * The engine's train step on one execution provider: a loss trajectory from a fixed start and
 * fixed batches (the same on every provider, so runs compare step by step), then its speed.
 *
 *   gpu-check --provider cpu|cuda|webgpu --model tiny|deit-t [--steps 20] [--timed 20] [--loop 10]
 *             [--write-inputs inputs.safetensors] [--out result.json]
 *
 * Everything is drawn from seeds in TypeScript (parameters: Trainer seed 0; batches: Rng(1)), so
 * the CPU run and a GPU run start from the same numbers. `--write-inputs` saves the start and the
 * batches for bench/gpu/torch_check.py (PyTorch on the same GPU). bench/gpu/pack.sh bundles this
 * file into one .mjs for the GPU machine, which has no Node.js of its own; it also runs here
 * through tsx.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { writeSafetensors } from "../../src/engine/checkpoint/safetensors.ts";
import { vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { Rng } from "../../src/engine/rng.ts";
import { EXECUTION_PROVIDERS, type ExecutionProvider } from "../../src/engine/runtime/providers.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";
import { type Batch, compileTrainer, Trainer } from "../../src/engine/train/trainer.ts";
import { BENCH_MODELS } from "../engine.ts";

const { values: o } = parseArgs({
  options: {
    provider: { type: "string", default: "cpu" },
    model: { type: "string", default: "tiny" },
    steps: { type: "string", default: "20" },
    timed: { type: "string", default: "20" },
    loop: { type: "string", default: "10" },
    lr: { type: "string", default: "1e-3" },
    "write-inputs": { type: "string" },
    out: { type: "string" },
  },
});

const provider = o.provider as ExecutionProvider;
if (!EXECUTION_PROVIDERS.includes(provider))
  throw new Error(`--provider must be one of ${EXECUTION_PROVIDERS.join(", ")}`);
const bench = BENCH_MODELS[o.model!];
if (!bench) throw new Error(`--model must be one of ${Object.keys(BENCH_MODELS).join(", ")}`);
const { cfg, batch } = bench;
const steps = Number(o.steps);
const timed = Number(o.timed);
const loop = Number(o.loop);
const lr = Number(o.lr);
const log = (line: string) => process.stderr.write(`[${provider} ${o.model}] ${line}\n`);

// No drop-path, so a step is a pure function of parameters, state and batch.
const spec = vitClassifierSpec(
  { ...cfg, dropPathRate: 0 },
  { batch, optimizer: { kind: "adamw", weightDecay: 0.05 }, labelSmoothing: 0.1 },
);

function makeBatches(n: number): Batch[] {
  const rng = new Rng(1);
  return Array.from({ length: n }, () => {
    const images = new Float32Array(batch * cfg.channels * cfg.imageSize ** 2);
    for (let i = 0; i < images.length; i++) images[i] = rng.normal();
    const labels = new BigInt64Array(batch);
    for (let i = 0; i < batch; i++) labels[i] = BigInt(rng.int(cfg.numClasses));
    return {
      images: f32([batch, cfg.channels, cfg.imageSize, cfg.imageSize], images),
      labels: { dtype: "int64", shape: [batch], data: labels },
    };
  });
}

async function main(): Promise<void> {
  const compileStart = performance.now();
  const artifacts = compileTrainer(spec, { eval: false, loopSteps: loop > 1 ? [loop] : [] });
  const compileMs = performance.now() - compileStart;
  const sessionStart = performance.now();
  const trainer = await Trainer.create(artifacts, { provider, seed: 0 });
  const sessionMs = performance.now() - sessionStart;
  const batches = makeBatches(Math.max(steps, loop, 1));

  if (o["write-inputs"]) {
    const tensors = new Map<string, { data: Float32Array | BigInt64Array; shape: number[] }>();
    const start = trainer.parameters();
    for (const p of spec.params) tensors.set(`init.${p.name}`, { data: start.get(p.name)!, shape: p.shape });
    const all = batches.slice(0, steps);
    const per = batch * cfg.channels * cfg.imageSize ** 2;
    const images = new Float32Array(per * all.length);
    const labels = new BigInt64Array(batch * all.length);
    all.forEach((b, k) => {
      images.set(b.images!.data as Float32Array, k * per);
      labels.set(b.labels!.data as BigInt64Array, k * batch);
    });
    tensors.set("images", {
      data: images,
      shape: [all.length * batch, cfg.channels, cfg.imageSize, cfg.imageSize],
    });
    tensors.set("labels", { data: labels, shape: [all.length * batch] });
    writeSafetensors(o["write-inputs"], tensors, {
      model: o.model!,
      config: JSON.stringify({ ...cfg, dropPathRate: 0 }),
      batch: String(batch),
      steps: String(steps),
      lr: String(lr),
    });
    log(`wrote the start and ${all.length} batches to ${o["write-inputs"]}`);
  }

  // 1. The trajectory: one step per run(), from the seeded start.
  const losses: number[] = [];
  const trajectoryStart = performance.now();
  for (let k = 0; k < steps; k++) losses.push((await trainer.trainStep(batches[k]!, lr)).loss);
  const trajectoryMs = performance.now() - trajectoryStart;
  log(`losses ${losses.map((l) => l.toFixed(5)).join(" ")}`);

  // 2. Speed (the parameters keep training; only time matters here).
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  async function stepsPerSecond(
    once: () => Promise<unknown>,
    perCall: number,
    calls: number,
  ): Promise<number> {
    await once(); // warm-up
    const rates: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) await once();
      rates.push((calls * perCall * 1000) / (performance.now() - t0));
    }
    return median(rates);
  }
  const single = timed > 0 ? await stepsPerSecond(() => trainer.trainStep(batches[0]!, lr), 1, timed) : null;
  const looped =
    timed > 0 && loop > 1
      ? await stepsPerSecond(
          () => trainer.trainSteps(batches.slice(0, loop), Array(loop).fill(lr)),
          loop,
          Math.max(1, Math.round(timed / loop)),
        )
      : null;
  await trainer.release();

  const result = {
    provider,
    model: o.model,
    batch,
    params: spec.params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0),
    onnxruntime: ort.env.versions,
    node: process.version,
    lr,
    losses,
    compile_ms: Math.round(compileMs),
    session_ms: Math.round(sessionMs),
    trajectory_ms: Math.round(trajectoryMs),
    single_step_steps_per_s: single,
    loop_steps: loop > 1 ? loop : null,
    loop_steps_per_s: looped,
  };
  log(
    `single ${single?.toFixed(2) ?? "-"} steps/s, loop×${loop} ${looped?.toFixed(2) ?? "-"} steps/s (session ${result.session_ms} ms)`,
  );
  const json = JSON.stringify(result);
  if (o.out) writeFileSync(o.out, `${json}\n`);
  process.stdout.write(`${json}\n`);
}

// One line saying what failed (the provider's own reason included), not a stack trace.
main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
