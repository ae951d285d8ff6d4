/** Run's fields: its rows (architecture, dataset, meta model, modules, jobs, artifacts), stages, events, accuracy curve. */

import type { RunResolvers } from "../../generated/graphql.ts";
import type { Artifact, Job, JobState, Prisma, Run, StageKind } from "../../generated/prisma/client.ts";
import { ArtifactKind } from "../../generated/prisma/enums.ts";
import { runPlacement, runSplitPlan, storedJobResult } from "../../platform/db/run-columns.ts";
import { parseRunEvent, type RunEvent } from "../../platform/events/run-event.ts";
import { projectOfRow } from "../auth/target-project.ts";
import type { ApiContext } from "../context.ts";
import { toGlobalId } from "../global-id.ts";
import { badArgument, toConnection } from "../pagination.ts";
import { lastOfKind, required } from "./relations.ts";
import { accuracyCurve } from "./run-curve.ts";

const STAGE_ORDER: readonly StageKind[] = ["PRETRAIN", "MODULAR", "ASSEMBLE", "FINETUNE", "EVAL", "E2E"];
const MAX_EVENTS_PAGE = 1000;

/** The state of a stage from the latest job of each of its modules (or of the stage itself). */
function stageState(jobs: readonly Job[]): JobState {
  const latest = new Map<string, Job>();
  for (const job of jobs) latest.set(job.moduleId ?? "", job); // jobs come oldest first
  const states = [...latest.values()].map((j) => j.state);
  if (states.includes("RUNNING")) return "RUNNING";
  if (states.includes("FAILED")) return "FAILED";
  if (states.includes("CANCELLED")) return "CANCELLED";
  if (states.every((s) => s === "SUCCEEDED")) return "SUCCEEDED";
  return states.includes("SUCCEEDED") ? "RUNNING" : "QUEUED";
}

function stagesOf(jobs: readonly Job[]) {
  return STAGE_ORDER.flatMap((kind) => {
    const stageJobs = jobs.filter((j) => j.stage === kind);
    if (stageJobs.length === 0) return [];
    const started = stageJobs.flatMap((j) => (j.startedAt ? [j.startedAt.getTime()] : []));
    const finished = stageJobs.map((j) => j.finishedAt?.getTime() ?? null);
    const state = stageState(stageJobs);
    const done = state === "SUCCEEDED" || state === "FAILED" || state === "CANCELLED";
    return [
      {
        kind,
        state,
        jobs: stageJobs,
        startedAt: started.length > 0 ? new Date(Math.min(...started)) : null,
        finishedAt:
          done && finished.every((f) => f !== null) ? new Date(Math.max(...(finished as number[]))) : null,
      },
    ];
  });
}

async function finalModel(run: Run, ctx: ApiContext): Promise<Artifact | null> {
  const artifacts = await ctx.loaders.artifactsByRun.load(run.id);
  return (
    lastOfKind(artifacts, ArtifactKind.FINAL_MODEL_ONNX) ?? lastOfKind(artifacts, ArtifactKind.FINAL_WEIGHTS)
  );
}

/** Event cursors: base64url of `seq:<n>`. */
const seqCursor = (event: RunEvent) => Buffer.from(`seq:${event.seq}`, "utf8").toString("base64url");

function seqOfCursor(cursor: string): number {
  const match = /^seq:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!match) throw badArgument("after", `"${cursor}" is not a cursor from this connection`);
  return Number(match[1]);
}

/** The stored plan with each module's measured MT seconds: its latest succeeded modular job's. */
async function splitPlanOf(run: Run, ctx: ApiContext) {
  const plan = runSplitPlan(run.splitPlan);
  if (!plan) return null;
  const [modules, jobs] = await Promise.all([
    ctx.loaders.modulesByRun.load(run.id),
    ctx.loaders.jobsByRun.load(run.id),
  ]);
  const measured = plan.split.map(() => null as number | null);
  for (const job of jobs) {
    // jobs come oldest first, so a retry's success overwrites an earlier attempt's
    const module = modules.find((m) => m.id === job.moduleId);
    if (job.stage !== "MODULAR" || job.state !== "SUCCEEDED" || !module) continue;
    measured[module.index] = storedJobResult(job.result)?.wallSeconds ?? null;
  }
  return {
    split: plan.split,
    predictedSeconds: plan.predictedSeconds,
    predictedPretrainSeconds: plan.predictedPretrainSeconds ?? null,
    evenSplit: plan.even.split,
    evenPredictedSeconds: plan.even.predictedSeconds,
    measuredSeconds: measured,
  };
}

export const runFields: RunResolvers = {
  id: (r) => toGlobalId("Run", r.id),
  project: projectOfRow,
  architecture: async (r, _, ctx) =>
    required(await ctx.loaders.architecture.load(r.architectureId), "architecture"),
  dataset: async (r, _, ctx) => required(await ctx.loaders.dataset.load(r.datasetId), "dataset"),
  metaModel: (r, _, ctx) => (r.metaModelId ? ctx.loaders.metaModel.load(r.metaModelId) : null),
  reusedFrom: (r, _, ctx) => (r.reusedFromRunId ? ctx.loaders.run.load(r.reusedFromRunId) : null),
  accuracy: (r) => storedJobResult(r.result)?.evalAccuracy ?? null,
  placement: (r) => runPlacement(r.placement),
  result: (r) => r.result ?? null,
  splitPlan: (r, _, ctx) => splitPlanOf(r, ctx),
  modules: (r, _, ctx) => ctx.loaders.modulesByRun.load(r.id),
  jobs: (r, _, ctx) => ctx.loaders.jobsByRun.load(r.id),
  stages: async (r, _, ctx) => stagesOf(await ctx.loaders.jobsByRun.load(r.id)),
  artifacts: async (r, args, ctx) => {
    const artifacts = await ctx.loaders.artifactsByRun.load(r.id);
    return args.kind == null ? artifacts : artifacts.filter((a) => a.kind === args.kind);
  },
  finalModel: (r, _, ctx) => finalModel(r, ctx),
  producedMetaModel: (r, _, ctx) => ctx.loaders.metaModelBySourceRun.load(r.id),
  accuracyCurve: (r, _, ctx) => accuracyCurve(r, ctx),
  /** The event log in `seq` order, after `afterSeq` and the `after` cursor (whichever is later). */
  events: async (r, args, ctx) => {
    if (args.afterSeq < 0) throw badArgument("afterSeq", `must be ≥ 0, got ${args.afterSeq}`);
    if (args.first < 0 || args.first > MAX_EVENTS_PAGE) {
      throw badArgument("first", `must be between 0 and ${MAX_EVENTS_PAGE}, got ${args.first}`);
    }
    const from = args.after != null ? Math.max(args.afterSeq, seqOfCursor(args.after)) : args.afterSeq;
    const where: Prisma.RunEventWhereInput = {
      runId: r.id,
      ...(args.moduleIndex != null ? { moduleIdx: args.moduleIndex } : {}),
    };
    const rows = await ctx.db.runEvent.findMany({
      where: { ...where, seq: { gt: from } },
      orderBy: { seq: "asc" },
      take: args.first + 1,
    });
    return toConnection(rows.map(parseRunEvent), {
      size: args.first,
      backwards: false,
      fromCursor: from > 0,
      cursorOf: seqCursor,
      count: () => ctx.db.runEvent.count({ where }),
    });
  },
};
