/**
 * `incubator doctor` — what this machine and configuration give the platform: ONNX Runtime and
 * its execution providers, threads, the GPU, the database and its migrations, the artifact
 * store. A table for people, `--json` for scripts; exit code 1 when something the
 * configuration asks for is missing.
 */
import { Command } from "commander";
import { EXECUTION_PROVIDERS, type ExecutionProvider } from "../engine/runtime/providers.ts";
import { type CheckResult, runChecks } from "./doctor-checks.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";

function table(results: CheckResult[]): string {
  const width = (pick: (r: CheckResult) => string, title: string) =>
    Math.max(title.length, ...results.map((r) => pick(r).length));
  const w1 = width((r) => r.check, "CHECK");
  const w2 = width((r) => r.status, "STATUS");
  const line = (a: string, b: string, c: string) => `${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}`;
  return [
    line("CHECK", "STATUS", "DETAIL"),
    ...results.map((r) => line(r.check, r.status, r.detail.replace(/\s+/g, " "))),
  ].join("\n");
}

export function doctorCommand(): Command {
  return new Command("doctor")
    .description(
      "check this machine and configuration: ONNX Runtime and its providers, threads, GPU, database and migrations, artifact store",
    )
    .option("--json", "print the checks as JSON")
    .option(
      "--device <provider>",
      `the execution provider this machine's workers will use (it must load): ${EXECUTION_PROVIDERS.join(", ")}`,
      "cpu",
    )
    .action(async (opts: { json?: boolean; device: string }) => {
      const config = loadConfigOrExit();
      if (!EXECUTION_PROVIDERS.includes(opts.device as ExecutionProvider))
        exitWithError(
          new Error(`--device must be one of ${EXECUTION_PROVIDERS.join(", ")}, got "${opts.device}"`),
        );
      const results = await runChecks(config, opts.device as ExecutionProvider);
      const ok = results.every((r) => r.status !== "fail");
      process.stdout.write(
        opts.json ? `${JSON.stringify({ ok, checks: results }, null, 2)}\n` : `${table(results)}\n`,
      );
      if (!ok && !opts.json) {
        const failed = results.filter((r) => r.status === "fail").map((r) => r.check);
        process.stderr.write(`incubator doctor: ${failed.join(", ")} failed\n`);
      }
      // Let open handles (ORT, SDK sockets) not hold the answer back.
      process.exit(ok ? 0 : 1);
    });
}
