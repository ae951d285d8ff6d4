/**
 * Time to accuracy between two runs (what `incubator compare` prints): how long each needs, on
 * the critical path and in total compute, to reach the reference run's final accuracy.
 *
 * Only the points of the model a run delivers count — FT's and E2E's target — since PT's meta
 * model and MT's hybrids are other networks. The accuracy compared is the curve's (the fixed
 * held-out subset), so both runs are measured with the same ruler; "final accuracy" on the
 * whole eval set (results.json `accuracy`) is printed beside it.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { AccuracyPoint } from "./accuracy-curve.ts";
import { PHASES, type Phase } from "./recipe.ts";

/** The two clocks of a run's curve (accuracy-curve.ts). */
export const CLOCKS = ["criticalPathSeconds", "computeSeconds"] as const;
export type Clock = (typeof CLOCKS)[number];

/** The phases whose model is the run's result. */
const FINAL_MODEL_PHASES: ReadonlySet<Phase> = new Set(["finetune", "e2e"]);

/** Accuracies on a subset are fractions k/n; this absorbs their rounding. */
const EPSILON = 1e-9;

const accuracyPoint = z.object({
  stage: z.enum(PHASES),
  moduleIndex: z.number().int().nullable(),
  step: z.number().int().min(0),
  jobSeconds: z.number(),
  criticalPathSeconds: z.number(),
  computeSeconds: z.number(),
  accuracy: z.number(),
  loss: z.number(),
});

/** What `compare` reads of a results.json (incubate.ts `IncubationResult`). */
const comparedResult = z.looseObject({
  kind: z.enum(["incubation", "e2e"]),
  accuracy: z.number().nullable(),
  criticalPathSeconds: z.number(),
  accuracyCurve: z.array(accuracyPoint).optional(),
});

export interface ComparedRun {
  /** The argument it came from (a results.json, its folder, or a platform run's ID). */
  label: string;
  kind: "incubation" | "e2e";
  /** On the whole eval set (results.json `accuracy`). */
  accuracy: number | null;
  criticalPathSeconds: number;
  /** The delivered model's points, in critical-path order. */
  curve: AccuracyPoint[];
}

/**
 * A results.json (or a run folder holding one) with a curve of its final model. `argument`
 * names the command-line argument in errors.
 */
export function loadComparedRun(path: string, argument: string): ComparedRun {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, "results.json");
  } catch {
    throw new Error(`${argument}: ${path} does not exist; give a results.json or the run's output folder`);
  }
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${argument}: cannot read ${file} as JSON: ${(error as Error).message}`);
  }
  const parsed = comparedResult.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(
      `${argument}: ${file} is not an incubator results.json (${issue.path.join(".") || "root"}: ${issue.message})`,
    );
  }
  const result = parsed.data;
  if (!result.accuracyCurve)
    throw new Error(
      `${argument}: ${file} has no accuracyCurve (written before curves were recorded); run it again`,
    );
  return comparedRun({ ...result, label: path, curve: result.accuracyCurve }, `${argument}: ${file}`);
}

/**
 * A run to compare from its whole curve (every stage's points), keeping the final model's.
 * `source` starts the error when it has none (e.g. "<a>: results.json"), `fix` ends it.
 */
export function comparedRun(
  run: ComparedRun,
  source: string,
  fix = "run it with an evalDataset and recipe.evalEvery > 0",
): ComparedRun {
  const curve = run.curve.filter((p) => FINAL_MODEL_PHASES.has(p.stage));
  if (curve.length === 0) throw new Error(`${source} has no curve points of its final model; ${fix}`);
  return {
    label: run.label,
    kind: run.kind,
    accuracy: run.accuracy,
    criticalPathSeconds: run.criticalPathSeconds,
    curve,
  };
}

/** The first time on `clock` at which the curve reaches `accuracy`; null if it never does. */
export function timeToReach(curve: readonly AccuracyPoint[], accuracy: number, clock: Clock): number | null {
  let best: number | null = null;
  for (const p of curve)
    if (p.accuracy >= accuracy - EPSILON && (best === null || p[clock] < best)) best = p[clock];
  return best;
}

/** The delivered model's accuracy on the curve at its last step. */
export const curveFinalAccuracy = (run: ComparedRun) =>
  run.curve.reduce((last, p) => (p.step >= last.step ? p : last)).accuracy;

export interface SpeedUp {
  clock: Clock;
  /** When the reference run first reached its own final curve accuracy. */
  referenceSeconds: number;
  /** When the other run first reached it; null: not reached. */
  candidateSeconds: number | null;
  /** referenceSeconds / candidateSeconds; null: not reached. */
  speedUp: number | null;
}

export interface Comparison {
  /** The run whose final accuracy is the target: the E2E one (else the second argument). */
  reference: ComparedRun;
  candidate: ComparedRun;
  /** The reference's final accuracy on the curve's subset. */
  targetAccuracy: number;
  speedUps: SpeedUp[];
}

/** `a` and `b` in either order: the E2E run is the reference when exactly one is E2E, else `b`. */
export function compareRuns(a: ComparedRun, b: ComparedRun): Comparison {
  const [candidate, reference] = a.kind === "e2e" && b.kind !== "e2e" ? [b, a] : [a, b];
  const targetAccuracy = curveFinalAccuracy(reference);
  const speedUps = CLOCKS.map((clock) => {
    const referenceSeconds = timeToReach(reference.curve, targetAccuracy, clock)!;
    const candidateSeconds = timeToReach(candidate.curve, targetAccuracy, clock);
    return {
      clock,
      referenceSeconds,
      candidateSeconds,
      speedUp: candidateSeconds === null ? null : referenceSeconds / Math.max(candidateSeconds, EPSILON),
    };
  });
  return { reference, candidate, targetAccuracy, speedUps };
}
