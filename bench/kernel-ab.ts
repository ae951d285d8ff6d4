/**
 * Two lowerings of one op on deit-t's shapes, timed in alternating rounds in one process (A B A B
 * …), by the process's CPU time (one intra-op thread by default), so that a loaded machine
 * disturbs both alike: the median per-round ratio B/A says which kernels are cheaper, which a
 * whole-step pair cannot resolve under load. CPU time includes run() overhead and output copies.
 *
 *   npx tsx bench/kernel-ab.ts [--rounds N] [--runs M] [--threads T]
 *
 * Cases: skipLayerNorm [2080,192] (com.microsoft SkipLayerNormalization vs Add + Add +
 * LayerNormalization), geluGrad [2080,768] (ten passes vs nine).
 */
import { GraphBuilder } from "../src/engine/ir/builder.ts";
import type { Value } from "../src/engine/ir/graph.ts";
import { type SerializeOptions, toOnnxModel } from "../src/engine/onnx/serialize.ts";
import { Rng } from "../src/engine/rng.ts";
import { EngineSession } from "../src/engine/runtime/session.ts";
import { f32, type HostTensor } from "../src/engine/runtime/tensor.ts";
import { numberFlag } from "./number-flag.ts";

const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => numberFlag(args, name, fallback);
const rounds = opt("rounds", 15);
const runs = opt("runs", 10);
const threads = opt("threads", 1);
const rng = new Rng(5);
const randn = (shape: number[]): HostTensor =>
  f32(
    shape,
    Float32Array.from({ length: shape.reduce((a, d) => a * d, 1) }, () => rng.normal()),
  );

interface Case {
  name: string;
  build: (b: GraphBuilder) => Value[];
  feeds: Record<string, HostTensor>;
  a: SerializeOptions;
  b: SerializeOptions;
  labels: [string, string];
}

const rows = 2080;
const cases: Case[] = [
  {
    name: "skipLayerNorm [2080,192]",
    build: (b) => {
      const x = b.input("x", "float32", [rows, 192]);
      const skip = b.input("skip", "float32", [rows, 192]);
      const [scale, shift, bias] = ["scale", "shift", "bias"].map((n) => b.input(n, "float32", [192]));
      const { y, sum } = b.skipLayerNorm(x, skip, { scale: scale!, shift: shift! }, { bias: bias! });
      const node = y.producer!;
      return [y, node.outputs[1]!, node.outputs[2]!, sum];
    },
    feeds: {
      x: randn([rows, 192]),
      skip: randn([rows, 192]),
      scale: randn([192]),
      shift: randn([192]),
      bias: randn([192]),
    },
    a: { fusedSkipLayerNorm: true },
    b: { fusedSkipLayerNorm: false },
    labels: ["SkipLayerNormalization", "Add+Add+LayerNormalization"],
  },
  {
    name: "geluGrad [2080,768]",
    build: (b) => [b.geluGrad(b.input("x", "float32", [rows, 768]), b.input("g", "float32", [rows, 768]))],
    feeds: { x: randn([rows, 768]), g: randn([rows, 768]) },
    a: { compactGeluGrad: true },
    b: { compactGeluGrad: false },
    labels: ["nine passes", "ten passes"],
  },
];

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
for (const c of cases) {
  const session = async (o: SerializeOptions) => {
    const b = new GraphBuilder("ab");
    c.build(b).forEach((v, i) => {
      b.output(`out${i}`, v);
    });
    return EngineSession.create(toOnnxModel(b.graph, o), { intraOpNumThreads: threads });
  };
  const [sa, sb] = [await session(c.a), await session(c.b)];
  // CPU time of this process (one intra-op thread by default): what the kernels cost, much less
  // sensitive than wall time to other processes competing for the cores.
  const time = async (s: EngineSession) => {
    const t0 = process.cpuUsage();
    for (let i = 0; i < runs; i++) await s.run(c.feeds);
    const d = process.cpuUsage(t0);
    return (d.user + d.system) / 1000 / runs;
  };
  await time(sa);
  await time(sb);
  const ta: number[] = [];
  const tb: number[] = [];
  const ratio: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const x = await time(sa);
    const y = await time(sb);
    ta.push(x);
    tb.push(y);
    ratio.push(y / x);
  }
  console.log(
    `${c.name}: A ${c.labels[0]} ${median(ta).toFixed(3)} ms, B ${c.labels[1]} ${median(tb).toFixed(3)} ms; ` +
      `B/A per round median ${median(ratio).toFixed(2)} (${Math.min(...ratio).toFixed(2)}–${Math.max(...ratio).toFixed(2)}), ${rounds} rounds × ${runs} runs`,
  );
  await sa.release();
  await sb.release();
}
