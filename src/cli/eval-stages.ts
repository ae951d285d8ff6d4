/**
 * `incubator eval-stages <run-dir>`: the test accuracy of each stage of a finished local run
 * (meta model, each hybrid, the assembled target before fine-tuning, the final model), read from
 * its folder without retraining (incubation/stage-eval.ts).
 */
import { Command } from "commander";
import { loadRunConfig } from "../incubation/config.ts";
import { evaluateStages, type StageAccuracy } from "../incubation/stage-eval.ts";
import { collect } from "./incubate.ts";

interface EvalStagesFlags {
  limit?: string;
  threads?: string;
  config?: string;
  set: string[];
  json?: boolean;
}

function positiveInteger(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag}: "${value}" is not a positive whole number`);
  return n;
}

const row = (r: StageAccuracy) =>
  `  ${r.stage.padEnd(10)} ${`${(r.accuracy * 100).toFixed(2)}%`.padStart(7)}   loss ${r.loss.toFixed(4)}`;

export function evalStagesCommand(): Command {
  return new Command("eval-stages")
    .description(
      "test accuracy of each stage of a finished run folder: meta model, hybrid i (module i in the frozen meta model), assembled before FT, final",
    )
    .argument("<run-dir>", "a folder written by `incubator incubate` or `incubator train` (has results.json)")
    .option("--limit <n>", "score on the first n test images (default: the run's evalLimit, else all)")
    .option("--threads <n>", "ONNX Runtime intra-op threads")
    .option(
      "-c, --config <file|preset>",
      "the run's config, for a results.json that records none (older runs); with the run's --set overrides",
    )
    .option(
      "--set <path=value>",
      "override a field of --config, as given to the run (repeatable)",
      collect,
      [],
    )
    .option("--json", "print one JSON object on stdout instead of a table")
    .action(async (runDir: string, flags: EvalStagesFlags) => {
      if (flags.set.length && !flags.config) throw new Error("--set: needs --config to override");
      const limit = positiveInteger("--limit", flags.limit);
      const threads = positiveInteger("--threads", flags.threads);
      const config = flags.config ? loadRunConfig(flags.config, flags.set) : undefined;
      let header = !flags.json;
      const result = await evaluateStages(runDir, {
        ...(config ? { config } : {}),
        ...(limit ? { limit } : {}),
        ...(threads ? { threads } : {}),
        onStage: (r) => {
          if (flags.json) return;
          if (header) process.stdout.write(`${runDir}\n`);
          header = false;
          process.stdout.write(`${row(r)}\n`);
        },
      });
      if (flags.json) process.stdout.write(`${JSON.stringify({ run: runDir, ...result })}\n`);
      else process.stdout.write(`  (${result.kind}, ${result.images} test images)\n`);
    });
}
