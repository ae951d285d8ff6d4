/**
 * `incubator compare <a> <b>`: two runs (results.json files, run folders, or platform run IDs
 * read through the GraphQL API; mixed is fine) — their final accuracies and the speed-up at equal accuracy,
 * on the critical path and in total compute (src/incubation/time-to-accuracy.ts).
 */
import { Command } from "commander";
import {
  type Clock,
  type ComparedRun,
  type Comparison,
  compareRuns,
  curveFinalAccuracy,
} from "../incubation/time-to-accuracy.ts";
import { API_TOKEN_ENV, API_URL_ENV, type ApiTarget, apiTarget } from "./api-client.ts";
import { exitWithError } from "./errors.ts";
import { loadComparedArgument } from "./platform-run.ts";

const percent = (x: number | null) => (x === null ? "n/a" : `${(x * 100).toFixed(2)} %`);
const seconds = (x: number) => `${x.toFixed(1)} s`;
const CLOCK_NAMES: Record<Clock, string> = {
  criticalPathSeconds: "critical path",
  computeSeconds: "compute",
};

/** The comparison as JSON: both runs (without their curves) and the speed-ups. */
export function comparisonJson(c: Comparison) {
  const run = (r: ComparedRun) => ({
    path: r.label,
    kind: r.kind,
    accuracy: r.accuracy,
    curveFinalAccuracy: curveFinalAccuracy(r),
    criticalPathSeconds: r.criticalPathSeconds,
  });
  return {
    reference: run(c.reference),
    candidate: run(c.candidate),
    targetAccuracy: c.targetAccuracy,
    speedUps: c.speedUps,
  };
}

export function comparisonText(c: Comparison): string {
  const row = (r: ComparedRun, role: string) =>
    `  ${role.padEnd(9)} ${r.kind.padEnd(10)} final ${percent(r.accuracy).padStart(8)} (subset ${percent(curveFinalAccuracy(r))})` +
    `  critical path ${seconds(r.criticalPathSeconds)}  ${r.label}`;
  const lines = [
    row(c.candidate, "candidate"),
    row(c.reference, "reference"),
    `Speed-up at equal accuracy (the reference's final ${percent(c.targetAccuracy)} on the curve's held-out subset):`,
    ...c.speedUps.map((s) => {
      const name = CLOCK_NAMES[s.clock].padEnd(13);
      if (s.candidateSeconds === null || s.speedUp === null)
        return `  ${name} not reached (the reference reaches it at ${seconds(s.referenceSeconds)})`;
      return `  ${name} ${s.speedUp.toFixed(2)}×  (candidate ${seconds(s.candidateSeconds)}, reference ${seconds(s.referenceSeconds)})`;
    }),
  ];
  return `${lines.join("\n")}\n`;
}

export function compareCommand(): Command {
  return new Command("compare")
    .description(
      "compare two runs (results.json, output folders, or platform run IDs): final accuracies and the speed-up at equal accuracy",
    )
    .argument(
      "<a>",
      "a results.json, a run's output folder, or a platform run's ID (the candidate, e.g. incubation)",
    )
    .argument("<b>", "another one (the reference whose final accuracy is the target; the E2E run if one is)")
    .option("--json", "print the comparison as JSON")
    .option(
      "--api <url>",
      `the platform's GraphQL URL, for run IDs (default: ${API_URL_ENV}, else http://127.0.0.1:$PORT/graphql)`,
    )
    .option(
      "--token <token>",
      `API token (inc_at_…) for run IDs; or ${API_TOKEN_ENV} (a loopback server in local mode needs none)`,
    )
    .action(async (a: string, b: string, flags: { json?: boolean; api?: string; token?: string }) => {
      try {
        let target: ApiTarget | undefined;
        const api = () => {
          target ??= apiTarget(flags);
          return target;
        };
        // Both at once; when both fail, <a>'s error is the one reported.
        const [runA, runB] = await Promise.allSettled([
          loadComparedArgument(a, "<a>", api),
          loadComparedArgument(b, "<b>", api),
        ]);
        if (runA.status === "rejected") throw runA.reason;
        if (runB.status === "rejected") throw runB.reason;
        const comparison = compareRuns(runA.value, runB.value);
        process.stdout.write(
          flags.json
            ? `${JSON.stringify(comparisonJson(comparison), null, 2)}\n`
            : comparisonText(comparison),
        );
      } catch (error) {
        exitWithError(error);
      }
    });
}
