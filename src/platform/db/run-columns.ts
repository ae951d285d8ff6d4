/**
 * JSON columns of runs and jobs, read through zod once at the boundary instead of cast where
 * used: a run's `placement` and `splitPlan`, a job's (and a run's) stored result.
 */
import { z } from "zod";
import { dataStats } from "../events/run-event.ts";

/** One entry of `run.placement`: labels for one module's modular job, or (no moduleIndex) every job. */
const placementEntry = z.object({
  moduleIndex: z.number().int().nullish(),
  labels: z.array(z.string()),
});
export type PlacementEntry = z.infer<typeof placementEntry>;

export function runPlacement(json: unknown): PlacementEntry[] {
  return z.array(placementEntry).parse(json ?? []);
}

/**
 * The fields of a stored JobResult (src/incubation/job.ts) that the platform reads; `run.result`
 * is the final job's. Other fields pass through untouched.
 */
const storedResult = z.looseObject({
  evalAccuracy: z.number().nullish(),
  wallSeconds: z.number().nullish(),
  data: dataStats.optional(),
});

export function storedJobResult(json: unknown): z.infer<typeof storedResult> | null {
  return json === null || json === undefined ? null : storedResult.parse(json);
}

/** `run.split_plan`: the split planner's `SplitPlan` (src/incubation/split-planner.ts) as startRun stored it. */
const storedSplitPlan = z.object({
  split: z.array(z.number().int()),
  predictedSeconds: z.array(z.number()),
  predictedPretrainSeconds: z.number().optional(),
  even: z.object({ split: z.array(z.number().int()), predictedSeconds: z.array(z.number()) }),
});
export type StoredSplitPlan = z.infer<typeof storedSplitPlan>;

export function runSplitPlan(json: unknown): StoredSplitPlan | null {
  return json === null || json === undefined ? null : storedSplitPlan.parse(json);
}
