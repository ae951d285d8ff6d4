/**
 * `incubator bench <name>`: benchmarks with results meant for bench/RESULTS.md. Speed targets
 * live here, never in unit tests.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { Command } from "commander";
import {
  BENCH_MODELS,
  BOOLEAN_KEYS,
  type EngineChildOptions,
  type EngineRun,
  type EngineVariant,
  formatVariant,
  measureEngine,
  measureMatmulPeak,
  measureTorch,
  OPT_LEVELS,
  parseVariant,
  type TimingOptions,
  torchAvailable,
  trainStepFlops,
} from "../../bench/engine.ts";
import { measureEventLatency } from "../../bench/events.ts";
import {
  alternate,
  endLoad,
  type Pair,
  pairRatios,
  round3,
  runContext,
  type SideRun,
  spread,
} from "../../bench/pairs.ts";
import { defaultMallocEnv, trainingEnv } from "../engine/runtime/malloc-tuning.ts";
import { BIN_PATH, SRC_DIR } from "./paths.ts";

interface EngineBenchOptions {
  models: string;
  threads: string;
  warmup: string;
  steps: string;
  repeats: string;
  loop: string;
  pairs: string;
  base: string;
  compare?: string;
  torch: boolean;
  spin: boolean;
  json: boolean;
}

const int = (value: string, flag: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a whole number, got "${value}"`);
  return n;
};

const log = (line: string) => process.stderr.write(`${line}\n`);
const mb = (x: number) => Math.round(x);
const range = (s: { min: number; max: number }) => `${s.min.toFixed(2)}–${s.max.toFixed(2)}`;

function engineCommand(): Command {
  return new Command("engine")
    .description(
      "train the same ViT in our ONNX Runtime engine and in PyTorch, alternating the two in pairs (fp32, AdamW)",
    )
    .option("--models <list>", `comma-separated: ${Object.keys(BENCH_MODELS).join(", ")}`, "tiny,deit-t")
    .option("--threads <n>", "intra-op threads for both engines", "2")
    .option("--warmup <n>", "untimed warm-up steps per process", "5")
    .option("--steps <n>", "timed steps per repeat", "20")
    .option("--repeats <n>", "repeats per process (its median is that process's figure)", "3")
    .option("--loop <n>", "our engine runs n steps per run() in an ONNX Loop (0: one step per run())", "10")
    .option("--pairs <n>", "alternating pairs per model (A B A B …, each side its own process)", "5")
    .option("--base <variant>", "engine variant of our side, key=value,… (see --compare)", "")
    .option(
      "--compare <variant>",
      "instead of PyTorch, pair the --base engine (A) against this variant (B): " +
        `${BOOLEAN_KEYS.join("|")}=true|false, optLevel=${OPT_LEVELS.join("|")}`,
    )
    .option("--no-torch", "only our engine, no pairs (a quick smoke run)")
    .option(
      "--no-spin",
      "idle threads sleep instead of spinning, in both engines (ORT allow_spinning=0, OMP_WAIT_POLICY=PASSIVE): " +
        "fairer on a machine shared with other work, where spinning OpenMP threads collapse PyTorch",
    )
    .option("--json", "last line: a JSON array with one object per model")
    .action(async (o: EngineBenchOptions) => {
      const models = o.models.split(",").map((m) => m.trim());
      for (const m of models) {
        if (!BENCH_MODELS[m])
          throw new Error(`--models: unknown model "${m}"; choose from ${Object.keys(BENCH_MODELS)}`);
      }
      const threads = int(o.threads, "--threads");
      const timing: TimingOptions = {
        threads,
        warmup: int(o.warmup, "--warmup"),
        steps: int(o.steps, "--steps"),
        repeats: int(o.repeats, "--repeats"),
      };
      const loop = int(o.loop, "--loop");
      const pairs = int(o.pairs, "--pairs");
      const spin = o.spin ? {} : { spinning: false };
      const base = { ...parseVariant(o.base, "--base"), ...spin };
      const compare =
        o.compare === undefined ? undefined : { ...spin, ...parseVariant(o.compare, "--compare") };
      if (!compare && o.torch) {
        const missing = torchAvailable();
        if (missing) throw new Error(`PyTorch: ${missing} (or pass --no-torch, or --compare <variant>)`);
      }
      const context = runContext();
      log(
        `machine: ${context.machine}, node ${context.node}, ${context.date}, commit ${context.commit}, ` +
          `load average (1 min) ${context.loadavg_1m_start}${o.spin ? "" : ", idle threads sleep (--no-spin)"}`,
      );
      const peak = await measureMatmulPeak(threads);
      log(`ONNX Runtime fp32 MatMul 2048³ peak: ${peak.toFixed(1)} GFLOP/s (${threads} threads)`);
      const ours = (model: string, variant: EngineVariant) => () =>
        runEngineChild(model, { ...timing, loop, variant });
      const rows = [];
      for (const model of models) {
        const { cfg, batch } = BENCH_MODELS[model]!;
        const flops = trainStepFlops(cfg, batch);
        const shared = {
          model,
          threads,
          loop_steps: Math.max(loop, 1),
          matmul_peak_gflops: round3(peak),
          idle_threads_spin: o.spin,
        };
        if (compare) {
          log(`${model}: A = ${formatVariant(base)}, B = ${formatVariant(compare)}`);
          const done = alternate(pairs, ours(model, base), ours(model, compare), (p, i) =>
            logPair(model, i, p, "A", "B", "b"),
          );
          const r = pairRatios(done, "b");
          const row = {
            ...shared,
            variant_a: formatVariant(base),
            variant_b: formatVariant(compare),
            ...summary(done, r, "a", "b"),
          };
          log(
            `${model}: B/A speed ${row.ratio} (${range(r.speed)}), B/A peak RSS ${row.rss_ratio} (${range(r.rss)}) over ${pairs} pairs`,
          );
          rows.push({ ...row, ...context, loadavg_1m_end: endLoad() });
        } else if (!o.torch) {
          const run = ours(model, base)();
          log(
            `${model}: ours ${run.steps_per_s.toFixed(3)} steps/s, peak RSS ${mb(run.peak_rss_mb)} MB, ` +
              `graph build ${run.graph_build_s.toFixed(2)} s + session ${run.session_create_s.toFixed(2)} s (one run, no pairs)`,
          );
          rows.push({
            ...shared,
            variant: formatVariant(base),
            ...run,
            ...context,
            loadavg_1m_end: endLoad(),
          });
        } else {
          const torchSide = (): SideRun => {
            const t = measureTorch(model, { ...timing, spinning: o.spin, hugePages: base.hugePages });
            return { steps_per_s: t.torch_steps_per_s, peak_rss_mb: t.torch_peak_rss_mb };
          };
          const done = alternate<EngineRun, SideRun>(pairs, ours(model, base), torchSide, (p, i) =>
            logPair(model, i, p, "ours", "torch", "a"),
          );
          const r = pairRatios(done, "a");
          const s = summary(done, r, "ort", "torch");
          const gflops = (flops * s.ort_steps_per_s) / 1e9;
          const row = {
            ...shared,
            variant: formatVariant(base),
            ...s,
            ...buildTimes(done.map((p) => p.a)),
            gflops: round3(gflops),
            peak_fraction: round3(gflops / peak),
          };
          log(
            `${model}: ours/torch speed ${row.ratio} (${range(r.speed)}) · ours ${row.ort_steps_per_s}, torch ${row.torch_steps_per_s} steps/s · ` +
              `peak RSS ours ${row.ort_peak_rss_mb} MB, torch ${row.torch_peak_rss_mb} MB, ratio ${row.rss_ratio} (${range(r.rss)}) · ` +
              `${row.gflops} GFLOP/s = ${(row.peak_fraction * 100).toFixed(0)}% of peak · ` +
              `graph build ${row.ort_graph_build_s} s + session ${row.ort_session_create_s} s (torch: none) · ${pairs} pairs`,
          );
          rows.push({ ...row, ...context, loadavg_1m_end: endLoad() });
        }
      }
      if (o.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
    });
}

/**
 * Our side's one-off cost before the first step, median over its processes: building the step
 * graph (IR, autodiff, optimizer, ONNX bytes; what the graph cache saves) and creating the ORT
 * session. PyTorch's eager mode has no such step.
 */
function buildTimes(runs: EngineRun[]) {
  return {
    ort_graph_build_s: round3(spread(runs.map((r) => r.graph_build_s)).median),
    ort_session_create_s: round3(spread(runs.map((r) => r.session_create_s)).median),
  };
}

/** One pair as it completes; `ratio` is the numerator side's speed over the other's. */
function logPair(
  model: string,
  i: number,
  p: Pair<SideRun, SideRun>,
  a: string,
  b: string,
  numerator: "a" | "b",
) {
  const ratio = numerator === "a" ? p.a.steps_per_s / p.b.steps_per_s : p.b.steps_per_s / p.a.steps_per_s;
  log(
    `  ${model} pair ${i + 1}: ${a} ${p.a.steps_per_s.toFixed(3)} steps/s ${mb(p.a.peak_rss_mb)} MB · ` +
      `${b} ${p.b.steps_per_s.toFixed(3)} steps/s ${mb(p.b.peak_rss_mb)} MB · ratio ${ratio.toFixed(3)}`,
  );
}

/**
 * The JSON fields of a paired comparison: `ratio` is the median per-pair speed ratio (min–max
 * beside it), `rss_ratio` the same for peak RSS; each side's own medians are kept under its label.
 */
function summary<A extends string, B extends string>(
  pairs: Pair<SideRun, SideRun>[],
  r: ReturnType<typeof pairRatios>,
  a: A,
  b: B,
) {
  const side = (label: string, k: "a" | "b") => ({
    [`${label}_steps_per_s`]: round3(spread(pairs.map((p) => p[k].steps_per_s)).median),
    [`${label}_peak_rss_mb`]: mb(spread(pairs.map((p) => p[k].peak_rss_mb)).median),
  });
  return {
    pairs: pairs.length,
    ratio: round3(r.speed.median),
    ratio_min: round3(r.speed.min),
    ratio_max: round3(r.speed.max),
    rss_ratio: round3(r.rss.median),
    rss_ratio_min: round3(r.rss.min),
    rss_ratio_max: round3(r.rss.max),
    ...side(a, "a"),
    ...side(b, "b"),
    per_pair: pairs.map((p) => ({
      [`${a}_steps_per_s`]: round3(p.a.steps_per_s),
      [`${b}_steps_per_s`]: round3(p.b.steps_per_s),
      [`${a}_peak_rss_mb`]: mb(p.a.peak_rss_mb),
      [`${b}_peak_rss_mb`]: mb(p.b.peak_rss_mb),
    })),
  } as Record<`${A | B}_steps_per_s` | `${A | B}_peak_rss_mb`, number> & {
    pairs: number;
    ratio: number;
    ratio_min: number;
    ratio_max: number;
    rss_ratio: number;
    rss_ratio_min: number;
    rss_ratio_max: number;
    per_pair: Record<string, number>[];
  };
}

/** Each engine measurement in a fresh process, so its peak RSS is its own. */
function runEngineChild(model: string, opts: EngineChildOptions): EngineRun {
  const args = [BIN_PATH, "bench", "engine-child", model, JSON.stringify(opts)];
  const env = opts.variant?.hugePages === false ? defaultMallocEnv() : trainingEnv();
  const result = spawnSync(process.execPath, args, { encoding: "utf8", env });
  if (result.status !== 0) throw new Error(`engine benchmark for ${model} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").at(-1)!) as EngineRun;
}

function eventsCommand(): Command {
  return new Command("events")
    .description(
      "run-event latency, writer's commit → graphql-ws subscriber's receipt, at several subscriber counts (bench/RESULTS.md)",
    )
    .option(
      "--subscribers <list>",
      "comma-separated subscriber counts (each its own WebSocket)",
      "1,100,1000",
    )
    .option("--events <n>", "timed events per point, over all runs", "500")
    .option("--runs <n>", "runs written at once; subscribers are spread over them", "4")
    .option("--rate-per-run <n>", "events per second written to each run", "4")
    .option("--repeat <n>", "repeat every point this many times (the spread is reported)", "1")
    .option("--api-processes <n>", "API processes sharing the database; subscribers spread over them", "1")
    .option("--client-processes <n>", "subscriber processes (0: one per 2,500 subscribers)", "0")
    .option(
      "--api-src <dir>",
      "the src folder whose API server to measure (an older checkout's for before/after)",
    )
    .option("--json", "last line: the whole report as JSON")
    .action(
      async (o: {
        subscribers: string;
        events: string;
        runs: string;
        ratePerRun: string;
        repeat: string;
        apiProcesses: string;
        clientProcesses: string;
        apiSrc?: string;
        json?: boolean;
      }) => {
        const positive = (value: string, flag: string) => {
          const n = int(value, flag);
          if (n < 1) throw new Error(`${flag} must be at least 1, got "${value}"`);
          return n;
        };
        const log = (line: string) => process.stderr.write(`${line}\n`);
        const report = await measureEventLatency({
          subscribers: o.subscribers.split(",").map((s) => positive(s.trim(), "--subscribers")),
          events: positive(o.events, "--events"),
          runs: positive(o.runs, "--runs"),
          ratePerRun: positive(o.ratePerRun, "--rate-per-run"),
          repeat: positive(o.repeat, "--repeat"),
          apiProcesses: positive(o.apiProcesses, "--api-processes"),
          clientProcesses: int(o.clientProcesses, "--client-processes"),
          apiSrc: o.apiSrc ?? SRC_DIR,
          dataDir: ".data/bench-events",
          log,
        });
        log(
          `machine: ${report.machine.cpu} × ${report.machine.cores}, node ${report.machine.node}, ${report.date}, ` +
            `commit ${report.commit}, load ${report.machine.loadavg_start.join(" ")} → ${report.machine.loadavg_end.join(" ")}`,
        );
        for (const s of report.summary) {
          log(
            `${String(s.subscribers).padStart(6)} subscribers: p99 over ${s.p99_ms.length} runs ${s.p99_ms.join(", ")} ms ` +
              `(median ${s.p99_median_ms}, range ${s.p99_min_ms}–${s.p99_max_ms})`,
          );
        }
        if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
      },
    );
}

const median = (xs: number[]) => spread(xs).median;

function uiCommand(): Command {
  return new Command("ui")
    .description(
      "the web dashboard in headless Chromium: bytes on first load and time to first render of a run with 64 modules and N events",
    )
    .option("--pairs <n>", "cold load / reload pairs, each in a fresh browser profile", "5")
    .option("--events <n>", "events in the seeded run's log", "10000")
    .option("--json", "last line: every load as JSON")
    .action(async (o: { pairs: string; events: string; json?: boolean }) => {
      // Loaded on demand: playwright-core is a dev dependency (the browser tests' driver).
      const { measureDashboard } = await import("../../bench/ui.ts");
      log(
        `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, node ${process.version}, ${new Date().toISOString()}`,
      );
      const result = await measureDashboard({
        pairs: int(o.pairs, "--pairs"),
        events: int(o.events, "--events"),
        dataDir: ".data/bench-ui",
      });
      for (const l of result.loads)
        log(
          `${l.kind.padEnd(6)} http ${l.httpBytes} B (assets ${l.assetBytes} B, ${l.requests} requests), ws ${l.wsBytes} B, ` +
            `first render ${l.firstRenderMs.toFixed(0)} ms, all ${result.events} events ${l.allEventsMs.toFixed(0)} ms, ${l.domElements} elements`,
        );
      const cold = result.loads.filter((l) => l.kind === "cold");
      const reload = result.loads.filter((l) => l.kind === "reload");
      const ratios = cold.map((c, i) => c.allEventsMs / reload[i]!.allEventsMs);
      log(
        `median cold: first render ${median(cold.map((l) => l.firstRenderMs)).toFixed(0)} ms, all events ${median(cold.map((l) => l.allEventsMs)).toFixed(0)} ms, ` +
          `${median(cold.map((l) => l.httpBytes))} B HTTP + ${median(cold.map((l) => l.wsBytes))} B WebSocket`,
      );
      log(
        `cold / reload time to all events, per pair: median ${median(ratios).toFixed(2)} (range ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
      );
      if (o.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    });
}

export function benchCommand(): Command {
  const bench = new Command("bench").description("benchmarks (results go to bench/RESULTS.md)");
  bench.addCommand(engineCommand());
  bench.addCommand(eventsCommand());
  bench.addCommand(uiCommand());
  bench.addCommand(
    new Command("engine-child")
      .argument("<model>")
      .argument("<options>")
      .action(async (model: string, options: string) => {
        process.stdout.write(`${JSON.stringify(await measureEngine(model, JSON.parse(options)))}\n`);
      }),
    { hidden: true },
  );
  return bench;
}
