/**
 * `Run.accuracyCurve`: the run's EVAL_POINT events grouped by job, with each job's wall time
 * from its stored result, placed on the run's clocks by the same function the local pipeline
 * uses (src/incubation/accuracy-curve.ts).
 */
import type { AccuracyPoint as AccuracyPointOut } from "../../generated/graphql.ts";
import type { Run, StageKind } from "../../generated/prisma/client.ts";
import { RunEventType } from "../../generated/prisma/enums.ts";
import { type JobCurve, runCurve } from "../../incubation/accuracy-curve.ts";
import type { Phase } from "../../incubation/recipe.ts";
import { storedJobResult } from "../../platform/db/run-columns.ts";
import { parseRunEvent, type RunEventOf } from "../../platform/events/run-event.ts";
import type { ApiContext } from "../context.ts";

/** The stages whose jobs train a model (and so may have a curve), as the engine names their phase. */
const PHASE_OF: Partial<Record<StageKind, Phase>> = {
  PRETRAIN: "pretrain",
  MODULAR: "modular",
  FINETUNE: "finetune",
  E2E: "e2e",
};
const STAGE_OF: Record<Phase, StageKind> = {
  pretrain: "PRETRAIN",
  modular: "MODULAR",
  finetune: "FINETUNE",
  e2e: "E2E",
};

const keyOf = (stage: StageKind, moduleIndex: number | null) => `${stage}/${moduleIndex ?? ""}`;

export async function accuracyCurve(run: Run, ctx: ApiContext): Promise<AccuracyPointOut[]> {
  const [jobs, modules, rows] = await Promise.all([
    ctx.loaders.jobsByRun.load(run.id),
    ctx.loaders.modulesByRun.load(run.id),
    ctx.db.runEvent.findMany({
      where: { runId: run.id, type: RunEventType.EVAL_POINT },
      orderBy: { seq: "asc" },
    }),
  ]);
  const indexOf = new Map(modules.map((m) => [m.id, m.index]));
  // One curve per trained stage and module: a module trained again (a retry, a new job row)
  // continues its curve; its duration is the newest successful job's.
  const curves = new Map<string, JobCurve>();
  const curveOf = (stage: StageKind, moduleIndex: number | null): JobCurve | undefined => {
    const phase = PHASE_OF[stage];
    if (!phase) return undefined;
    const key = keyOf(stage, moduleIndex);
    let curve = curves.get(key);
    if (!curve) {
      curve = { phase, moduleIndex, wallSeconds: null, points: [] };
      curves.set(key, curve);
    }
    return curve;
  };
  for (const job of jobs) {
    const curve = curveOf(job.stage, job.moduleId ? (indexOf.get(job.moduleId) ?? null) : null);
    const seconds = job.state === "SUCCEEDED" ? storedJobResult(job.result)?.wallSeconds : null;
    if (curve && seconds != null) curve.wallSeconds = seconds; // jobs come oldest first
  }
  for (const row of rows) {
    const event = parseRunEvent(row) as RunEventOf<"EVAL_POINT">;
    const { step, seconds, accuracy, loss } = event;
    curveOf(event.stage, event.moduleIndex)?.points.push({ step, seconds, accuracy, loss });
  }
  return runCurve([...curves.values()]).map((p) => ({ ...p, stage: STAGE_OF[p.stage] }));
}
