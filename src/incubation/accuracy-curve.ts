/**
 * A run's accuracy curve: its jobs' curve points (job-eval.ts, `evalPoint` events) placed on
 * two clocks the whole run shares.
 *
 * - **Critical path**: the wall time if each module had its own machine — PT, then the MT jobs
 *   (all starting when PT ended), then FT starting when PT and the slowest MT job ended. An E2E
 *   run's critical path is its one job.
 * - **Compute**: the sum of all job seconds spent so far, with the MT jobs running side by side:
 *   at MT second t, PT's seconds plus min(t, d) of each MT job of duration d; FT adds to all of
 *   PT's and MT's seconds.
 *
 * The local pipeline (incubate.ts) and the API's `Run.accuracyCurve` both build the curve here,
 * from the same points and job durations, so a run reads the same on either.
 */
import type { Phase } from "./recipe.ts";

/** One point as a job records it: `seconds` since the job started. */
export interface JobCurvePoint {
  step: number;
  seconds: number;
  accuracy: number;
  loss: number;
}

/** One job's points and how long it ran (for a running job: as long as its points say). */
export interface JobCurve {
  phase: Phase;
  moduleIndex?: number | null;
  /** The job's wall seconds (JobResult.wallSeconds); null while it has not finished. */
  wallSeconds: number | null;
  /** In the order the job recorded them (attempts after a retry follow the earlier ones). */
  points: JobCurvePoint[];
}

/** One point of a run's curve. */
export interface AccuracyPoint {
  stage: Phase;
  moduleIndex: number | null;
  step: number;
  /** Seconds since the job started. */
  jobSeconds: number;
  criticalPathSeconds: number;
  computeSeconds: number;
  accuracy: number;
  loss: number;
}

/**
 * A retried job's points on one clock. A new attempt restarts its clock (its seconds go back)
 * and resumes from a checkpoint (its steps may go back): the earlier attempt's points past the
 * resumed step are dropped, and the new attempt's seconds continue from the last point kept.
 */
export function joinAttempts(points: readonly JobCurvePoint[]): JobCurvePoint[] {
  const kept: JobCurvePoint[] = [];
  let offset = 0;
  let previousRaw = -Infinity;
  for (const p of points) {
    if (p.seconds < previousRaw) {
      while (kept.length > 0 && kept.at(-1)!.step >= p.step) kept.pop();
      offset = kept.at(-1)?.seconds ?? 0;
    }
    previousRaw = p.seconds;
    kept.push({ ...p, seconds: p.seconds + offset });
  }
  return kept;
}

/** How long a job ran: its result's wall time, or (running, or retried) as far as its points reach. */
const durationOf = (job: JobCurve, points: JobCurvePoint[]) =>
  Math.max(job.wallSeconds ?? 0, points.at(-1)?.seconds ?? 0);

const STAGE_ORDER: Record<Phase, number> = { pretrain: 0, modular: 1, finetune: 2, e2e: 2 };

/** The run's curve, ordered by critical-path time (then stage, module and step). */
export function runCurve(jobs: readonly JobCurve[]): AccuracyPoint[] {
  const timed = jobs.map((job) => {
    const points = joinAttempts(job.points);
    return { job, points, seconds: durationOf(job, points) };
  });
  const sum = (phase: Phase) =>
    timed.filter((t) => t.job.phase === phase).reduce((total, t) => total + t.seconds, 0);
  const modular = timed.filter((t) => t.job.phase === "modular").map((t) => t.seconds);
  const pretrain = sum("pretrain");
  const slowestModule = Math.max(0, ...modular);
  const allModules = modular.reduce((a, b) => a + b, 0);
  const clocks: Record<Phase, (t: number) => { criticalPathSeconds: number; computeSeconds: number }> = {
    pretrain: (t) => ({ criticalPathSeconds: t, computeSeconds: t }),
    modular: (t) => ({
      criticalPathSeconds: pretrain + t,
      computeSeconds: pretrain + modular.reduce((total, d) => total + Math.min(t, d), 0),
    }),
    finetune: (t) => ({
      criticalPathSeconds: pretrain + slowestModule + t,
      computeSeconds: pretrain + allModules + t,
    }),
    e2e: (t) => ({ criticalPathSeconds: t, computeSeconds: t }),
  };
  const curve = timed.flatMap(({ job, points }) =>
    points.map((p) => ({
      stage: job.phase,
      moduleIndex: job.moduleIndex ?? null,
      step: p.step,
      jobSeconds: p.seconds,
      ...clocks[job.phase](p.seconds),
      accuracy: p.accuracy,
      loss: p.loss,
    })),
  );
  return curve.sort(
    (a, b) =>
      a.criticalPathSeconds - b.criticalPathSeconds ||
      STAGE_ORDER[a.stage] - STAGE_ORDER[b.stage] ||
      (a.moduleIndex ?? 0) - (b.moduleIndex ?? 0) ||
      a.step - b.step,
  );
}

/**
 * The curve along the run's critical path: PT's points, the slowest MT job's (the one that
 * ended last) and FT's — or E2E's. What a time-to-accuracy plot draws for one run.
 */
export function criticalPathCurve(curve: readonly AccuracyPoint[]): AccuracyPoint[] {
  const endOf = new Map<number, number>();
  for (const p of curve)
    if (p.stage === "modular" && p.moduleIndex !== null)
      endOf.set(p.moduleIndex, Math.max(endOf.get(p.moduleIndex) ?? 0, p.criticalPathSeconds));
  const slowest = [...endOf.entries()].reduce<[number, number] | null>(
    (best, entry) => (best === null || entry[1] > best[1] ? entry : best),
    null,
  )?.[0];
  return curve.filter((p) => p.stage !== "modular" || p.moduleIndex === slowest);
}
