/**
 * `incubator incubate`, `incubator train` and `incubator job`: Deep Incubation and the E2E
 * baseline on this machine, with per-job progress bars on a terminal or one JSON line per event.
 */

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import cliProgress from "cli-progress";
import { Command } from "commander";
import { DataError } from "../data/errors.ts";
import { configFromWeights } from "../engine/models/vit-weights.ts";
import { loadPlannedRunConfig, loadRunConfig, RUN_PRESETS, type RunConfig } from "../incubation/config.ts";
import { type IncubationResult, incubate, type StageEvent, trainEndToEnd } from "../incubation/incubate.ts";
import {
  JOB_CANCELLED_EXIT_CODE,
  JOB_FAILED_PERMANENTLY_EXIT_CODE,
  JobCancelledError,
  JobFailedError,
  type JobSpec,
  runJob,
} from "../incubation/job.ts";
import type { SplitPlan } from "../incubation/split-planner.ts";
import { graphCacheDir, loadConfig } from "../platform/config/config.ts";
import { BIN_PATH } from "./paths.ts";
import { ensureTrainingProcess } from "./training-process.ts";

interface RunFlags {
  config: string;
  set: string[];
  out?: string;
  workers?: string;
  seed?: string;
  decentralized?: boolean;
  meta?: string;
  dataset?: string;
  json?: boolean;
}

export const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * `--dataset` as a dataset spec (JSON) or a directory: the training split, and the test split
 * of the same data for evaluation. A directory is read as IDX (MNIST family) unless it holds
 * CIFAR binary batches.
 */
export function datasetFlag(value: string): string[] {
  let spec: Record<string, unknown>;
  if (value.trim().startsWith("{")) {
    try {
      spec = JSON.parse(value);
    } catch (error) {
      throw new Error(`--dataset: not valid JSON: ${(error as Error).message}`);
    }
  } else {
    const cifar = existsSync(join(value, "data_batch_1.bin"));
    spec = { format: cifar ? "cifar10" : "idx", path: value };
  }
  const json = (split: string) => JSON.stringify({ ...spec, split });
  return [`dataset=${json("train")}`, `evalDataset=${json("test")}`];
}

function overridesFrom(flags: RunFlags): string[] {
  const sets = [...(flags.dataset ? datasetFlag(flags.dataset) : []), ...flags.set];
  if (flags.workers) sets.push(`workers=${flags.workers}`);
  if (flags.seed) sets.push(`seed=${flags.seed}`);
  if (flags.decentralized) sets.push("decentralized=true");
  return sets;
}

/**
 * The incubation config; `modules: "auto"` / {auto: K} is planned here, measured with the
 * threads each MT job will get (1 each when several run at once, as `incubate` gives them), and
 * with K fixed by `--meta` when a meta model is given.
 */
async function incubationConfigFrom(flags: RunFlags): Promise<RunConfig> {
  const sets = overridesFrom(flags);
  // The rest of the config (workers, threads, target), read with the split fixed at 1.
  const fixed = loadRunConfig(flags.config, [...sets, "modules=1"]);
  const parallel = fixed.workers > 1;
  const threads = parallel ? (fixed.threads ?? 1) : fixed.threads;
  const metaDepth = flags.meta
    ? withFlag("--meta", () => configFromWeights(resolve(flags.meta!), fixed.target.heads)).depth
    : undefined;
  return loadPlannedRunConfig(flags.config, sets, {
    ...(threads ? { threads } : {}),
    ...(metaDepth ? { modules: metaDepth } : {}),
  });
}

const seconds = (xs: number[]) => `[${xs.map((x) => x.toFixed(1)).join(", ")}] s`;

/** The plan before the run: boundaries and predicted seconds per MT job, against the even split. */
function printPlan(plan: SplitPlan): void {
  const slowest = (xs: number[]) => Math.max(...xs).toFixed(1);
  const lines = [
    `split planner: ${plan.split.length} modules, blocks [${plan.split.join(", ")}]`,
    `  predicted MT seconds per job: ${seconds(plan.predictedSeconds)} (slowest ${slowest(plan.predictedSeconds)} s)`,
    `  even split [${plan.even.split.join(", ")}] would be: ${seconds(plan.even.predictedSeconds)} (slowest ${slowest(plan.even.predictedSeconds)} s)`,
    ...(plan.predictedPretrainSeconds !== undefined
      ? [`  predicted PT: ${plan.predictedPretrainSeconds.toFixed(1)} s`]
      : []),
  ];
  process.stderr.write(`${lines.join("\n")}\n`);
}

/** Progress bars per job on a TTY; JSON lines with --json; a line per stage otherwise. */
function reporter(json: boolean) {
  if (json) {
    return {
      onEvent: (event: StageEvent) => process.stdout.write(`${JSON.stringify(event)}\n`),
      stop: () => {},
    };
  }
  if (!process.stderr.isTTY) {
    return {
      onEvent: (event: StageEvent) => {
        if (event.type === "start")
          process.stderr.write(`${event.job}: ${event.totalSteps} steps on ${event.trainImages} images\n`);
        if (event.type === "eval")
          process.stderr.write(`${event.job}: accuracy ${(event.accuracy * 100).toFixed(2)}%\n`);
        if (event.type === "done") {
          process.stderr.write(
            `${event.job}: done in ${event.result.wallSeconds.toFixed(1)} s, final loss ${event.result.finalLoss?.toFixed(4)}\n`,
          );
        }
      },
      stop: () => {},
    };
  }
  const bars = new cliProgress.MultiBar(
    {
      format: " {job} |{bar}| {value}/{total} · loss {loss} · {ips} img/s · ETA {eta_formatted}",
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const byJob = new Map<string, cliProgress.SingleBar>();
  return {
    onEvent: (event: StageEvent) => {
      const job = event.job.padEnd(8);
      if (event.type === "start") {
        byJob.set(event.job, bars.create(event.totalSteps, event.startStep, { job, loss: "-", ips: "-" }));
      } else if (event.type === "progress") {
        byJob.get(event.job)?.update(event.step, {
          job,
          loss: event.loss.toFixed(4),
          ips: Math.round(event.imagesPerSecond),
        });
      }
    },
    stop: () => bars.stop(),
  };
}

const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;

function printSummary(result: IncubationResult, out: string) {
  const lines = [
    "",
    `${result.kind === "incubation" ? "Deep Incubation" : "E2E baseline"} finished in ${result.totalWallSeconds.toFixed(1)} s`,
    `  test accuracy: ${result.accuracy === null ? "n/a" : `${(result.accuracy * 100).toFixed(2)}%`}`,
    ...Object.entries(result.stages).map(
      ([stage, t]) =>
        `  ${stage.padEnd(9)} ${t.wallSeconds.toFixed(1).padStart(7)} s` +
        (t.data ? `  ${t.data.records} images, ${megabytes(t.bytesRead ?? 0)} read` : ""),
    ),
    ...(result.plan
      ? [
          `  MT seconds per job, predicted: ${seconds(result.plan.predictedSeconds)}`,
          `                      measured:  ${seconds(result.plan.measuredSeconds)}`,
        ]
      : []),
    `  critical path if each module had its own machine: ${result.criticalPathSeconds.toFixed(1)} s`,
    `  weights: ${result.weightsPath}`,
    `  ONNX model: ${result.onnxPath} (input "images" [N,C,H,W], output "logits")`,
    `  results: ${resolve(out, "results.json")}`,
  ];
  process.stderr.write(`${lines.join("\n")}\n`);
}

function runOptions(command: Command): Command {
  return command
    .requiredOption(
      "-c, --config <file|preset>",
      `a JSON run config or a preset: ${Object.keys(RUN_PRESETS).join(", ")}`,
    )
    .option(
      "--set <path=value>",
      "override a config field, e.g. --set recipe.steps.modular=200 (repeatable)",
      collect,
      [],
    )
    .option("-o, --out <dir>", "output directory", "runs/latest")
    .option("--seed <n>", "random seed (same seed, same machine: same result)")
    .option(
      "--dataset <dir|json>",
      'replace the config\'s data: an IDX or CIFAR-10 directory, or a spec like \'{"format":"cifar100","path":"…"}\'',
    )
    .option("--json", "one JSON line per event on stdout instead of progress bars");
}

function withFlag<T>(flag: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw new Error(`${flag}: ${(error as Error).message}`);
  }
}

/** The machine's graph cache (DATA_DIR/graph-cache), shared with its platform workers. */
const localGraphCache = () => graphCacheDir(resolve(loadConfig().DATA_DIR));

export function incubateCommand(): Command {
  return runOptions(new Command("incubate"))
    .description("Deep Incubation: meta pre-training → K modular jobs → assembly → fine-tuning → evaluation")
    .option("-w, --workers <n>", "modular jobs to run in parallel (child processes)")
    .option("--decentralized", "module i trains only on class-balanced shard i of the training set")
    .option("--meta <weights>", "use this meta model (safetensors) instead of pre-training one")
    .option("--plan-only", 'print the split planner\'s plan (modules "auto" or {"auto": K}) and stop')
    .action(async (flags: RunFlags & { planOnly?: boolean }) => {
      await ensureTrainingProcess();
      const config = await incubationConfigFrom(flags);
      if (config.plan && flags.json)
        process.stdout.write(`${JSON.stringify({ type: "plan", plan: config.plan })}\n`);
      else if (config.plan) printPlan(config.plan);
      if (flags.planOnly) {
        if (!config.plan)
          throw new Error('--plan-only: the split is fixed; set modules to "auto" or {"auto": K}');
        return;
      }
      const report = reporter(Boolean(flags.json));
      try {
        const result = await incubate(
          {
            ...config,
            outDir: flags.out!,
            bin: BIN_PATH,
            graphCacheDir: localGraphCache(),
            // The meta model's architecture is read from its tensors (another width: adapters).
            ...(flags.meta
              ? {
                  metaWeights: resolve(flags.meta),
                  meta: withFlag("--meta", () =>
                    configFromWeights(resolve(flags.meta!), config.target.heads),
                  ),
                }
              : {}),
          },
          report.onEvent,
        );
        report.stop();
        if (flags.json) process.stdout.write(`${JSON.stringify({ type: "result", result })}\n`);
        else printSummary(result, flags.out!);
      } finally {
        report.stop();
      }
    });
}

export function trainCommand(): Command {
  return runOptions(new Command("train"))
    .description("train the target end to end (the E2E baseline)")
    .option("--phase <phase>", "only e2e for now", "e2e")
    .action(async (flags: RunFlags & { phase: string }) => {
      await ensureTrainingProcess();
      if (flags.phase !== "e2e")
        throw new Error(`--phase: only "e2e" runs standalone; use \`incubator incubate\` for the rest`);
      // E2E trains the whole target: no modules, so a planned split is not measured.
      const config = loadRunConfig(flags.config, [...overridesFrom(flags), "modules=1"]);
      const report = reporter(Boolean(flags.json));
      const result = await trainEndToEnd(
        { ...config, outDir: flags.out!, graphCacheDir: localGraphCache() },
        report.onEvent,
      );
      report.stop();
      if (flags.json) process.stdout.write(`${JSON.stringify({ type: "result", result })}\n`);
      else printSummary(result, flags.out!);
    });
}

/** One job from a spec, events as JSON lines: what `incubate --workers N` spawns. */
export function jobCommand(): Command {
  return new Command("job")
    .description("run one training job from a job spec (JSON or @file), printing JSON-line events")
    .requiredOption("--spec <json|@file>", "the job spec")
    .action(async (flags: { spec: string }) => {
      await ensureTrainingProcess();
      const text = flags.spec.startsWith("@") ? readFileSync(flags.spec.slice(1), "utf8") : flags.spec;
      const spec = JSON.parse(text) as JobSpec;
      // SIGTERM (a worker passing on a cancellation) stops at the next step with a checkpoint.
      const controller = new AbortController();
      process.once("SIGTERM", () => controller.abort());
      // If whoever reads our events is gone (a worker killed with SIGKILL), stop: a retry elsewhere takes over.
      process.stdout.on("error", () => process.exit(1));
      try {
        await runJob(spec, {
          signal: controller.signal,
          onEvent: (event) => process.stdout.write(`${JSON.stringify(event)}\n`),
        });
      } catch (error) {
        if (
          error instanceof JobCancelledError ||
          error instanceof JobFailedError ||
          error instanceof DataError
        ) {
          process.stderr.write(`incubator: ${error.message}\n`);
          process.exit(
            error instanceof JobCancelledError ? JOB_CANCELLED_EXIT_CODE : JOB_FAILED_PERMANENTLY_EXIT_CODE,
          );
        }
        throw error;
      }
    });
}
