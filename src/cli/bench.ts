/**
 * `incubator bench <name>`: benchmarks with results meant for bench/RESULTS.md. Speed targets
 * live here, never in unit tests.
 */
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { Command } from "commander";
import {
  BENCH_MODELS,
  type EngineRun,
  measureEngine,
  measureMatmulPeak,
  measureTorch,
  torchAvailable,
  trainStepFlops,
} from "../../bench/engine.ts";
import { measureEventLatency } from "../../bench/events.ts";
import { BIN_PATH, SRC_DIR } from "./paths.ts";

interface EngineBenchOptions {
  models: string;
  threads: string;
  warmup: string;
  steps: string;
  repeats: string;
  loop: string;
  torch: boolean;
  json: boolean;
}

const int = (value: string, flag: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a whole number, got "${value}"`);
  return n;
};

function engineCommand(): Command {
  return new Command("engine")
    .description("train the same ViT in our ONNX Runtime engine and in PyTorch, side by side (fp32, AdamW)")
    .option("--models <list>", `comma-separated: ${Object.keys(BENCH_MODELS).join(", ")}`, "tiny,deit-t")
    .option("--threads <n>", "intra-op threads for both engines", "2")
    .option("--warmup <n>", "untimed warm-up steps", "5")
    .option("--steps <n>", "timed steps per repeat", "20")
    .option("--repeats <n>", "repeats (the median is reported)", "3")
    .option("--loop <n>", "also time Loop mode with n steps per run() (0: off)", "10")
    .option("--no-torch", "skip the PyTorch side")
    .option("--json", "last line: a JSON array with one object per model")
    .action(async (o: EngineBenchOptions) => {
      const models = o.models.split(",").map((m) => m.trim());
      for (const m of models) {
        if (!BENCH_MODELS[m])
          throw new Error(`--models: unknown model "${m}"; choose from ${Object.keys(BENCH_MODELS)}`);
      }
      const threads = int(o.threads, "--threads");
      const common = {
        threads,
        warmup: int(o.warmup, "--warmup"),
        steps: int(o.steps, "--steps"),
        repeats: int(o.repeats, "--repeats"),
      };
      const loop = int(o.loop, "--loop");
      const torchMissing = o.torch ? torchAvailable() : "skipped (--no-torch)";
      const log = (line: string) => process.stderr.write(`${line}\n`);
      log(
        `machine: ${cpus()[0]?.model ?? "?"} × ${cpus().length}, node ${process.version}, ${new Date().toISOString()}`,
      );
      const peak = await measureMatmulPeak(threads);
      log(`ONNX Runtime fp32 MatMul 2048³ peak: ${peak.toFixed(1)} GFLOP/s (${threads} threads)`);
      if (torchMissing) log(`PyTorch: ${torchMissing}`);
      const rows = [];
      for (const model of models) {
        const single = runEngineChild(model, { ...common, loop: 0 });
        const looped = loop > 1 ? runEngineChild(model, { ...common, loop }) : undefined;
        const best = looped && looped.steps_per_s > single.steps_per_s ? looped : single;
        const torch = torchMissing ? undefined : measureTorch(model, common);
        const { cfg, batch } = BENCH_MODELS[model]!;
        const gflops = (trainStepFlops(cfg, batch) * best.steps_per_s) / 1e9;
        const row = {
          model,
          ort_steps_per_s: round(best.steps_per_s),
          ort_single_step_steps_per_s: round(single.steps_per_s),
          ort_loop_steps_per_s: looped ? round(looped.steps_per_s) : null,
          torch_steps_per_s: torch ? round(torch.torch_steps_per_s) : null,
          ratio: torch ? round(best.steps_per_s / torch.torch_steps_per_s) : null,
          gflops: round(gflops),
          peak_fraction: round(gflops / peak),
          matmul_peak_gflops: round(peak),
          ort_peak_rss_mb: Math.round(best.peak_rss_mb),
          torch_peak_rss_mb: torch ? Math.round(torch.torch_peak_rss_mb) : null,
          threads,
        };
        rows.push(row);
        log(
          `${model.padEnd(7)} ours ${row.ort_steps_per_s} steps/s (single ${row.ort_single_step_steps_per_s}, loop ${row.ort_loop_steps_per_s ?? "-"}) · ` +
            `torch ${row.torch_steps_per_s ?? "-"} · ratio ${row.ratio ?? "-"} · ${row.gflops} GFLOP/s = ${(row.peak_fraction * 100).toFixed(0)}% of peak · ` +
            `RSS ours ${row.ort_peak_rss_mb} MB, torch ${row.torch_peak_rss_mb ?? "-"} MB`,
        );
      }
      if (o.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
    });
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** Each engine measurement in a fresh process, so its peak RSS is its own. */
function runEngineChild(
  model: string,
  opts: { threads: number; warmup: number; steps: number; repeats: number; loop: number },
): EngineRun {
  const args = [BIN_PATH, "bench", "engine-child", model, JSON.stringify(opts)];
  const result = spawnSync(process.execPath, args, { encoding: "utf8" });
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

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

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
      const log = (line: string) => process.stderr.write(`${line}\n`);
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
