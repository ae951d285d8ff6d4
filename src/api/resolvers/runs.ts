/**
 * The read side of runs: Run, Module (progress, lineage), Job, Artifact, MetaModel, stages, and
 * the runs/metaModels queries. Related rows come through the request's DataLoaders.
 */
import { GraphQLError } from "graphql";
import type {
  Artifact,
  Job,
  JobState,
  MetaModel,
  Module,
  Prisma,
  Run,
  RunState,
  StageKind,
} from "../../generated/prisma/client.ts";
import { ArtifactKind } from "../../generated/prisma/enums.ts";
import { metaIncompatibility, widthAdapters } from "../../incubation/hybrid.ts";
import { metaConfigFor } from "../../incubation/modules.ts";
import { runPlacement, storedJobResult } from "../../platform/db/run-columns.ts";
import { metaModelConfig, targetConfig } from "../../platform/dispatch/plan.ts";
import { parseStoredJobSpec } from "../../platform/dispatch/stored-spec.ts";
import { parseRunEvent } from "../../platform/events/run-event.ts";
import type { ApiContext } from "../context.ts";
import { fromGlobalId, toGlobalId } from "../global-id.ts";
import { badArgument, type PageArgs, paginate } from "../pagination.ts";
import { dataStatsOut } from "./data-stats.ts";

/** Kinds of artifact made from a run's modules (lineage: `assembledFrom`). */
const ASSEMBLED_KINDS: readonly ArtifactKind[] = [
  ArtifactKind.ASSEMBLED_MODEL,
  ArtifactKind.FINAL_MODEL_ONNX,
  ArtifactKind.FINAL_WEIGHTS,
];

const STAGE_ORDER: readonly StageKind[] = ["PRETRAIN", "MODULAR", "ASSEMBLE", "FINETUNE", "EVAL", "E2E"];
const MAX_EVENTS_PAGE = 1000;

/** A relation the schema declares non-null; a missing row means the database is inconsistent. */
function required<T>(value: T | null, what: string): T {
  if (value === null)
    throw new GraphQLError(`${what} not found`, { extensions: { code: "INTERNAL_SERVER_ERROR" } });
  return value;
}

export function runsConnection(
  ctx: ApiContext,
  args: PageArgs & { state?: string | null },
  filter: Prisma.RunWhereInput = {},
) {
  const where: Prisma.RunWhereInput = { ...filter, ...(args.state ? { state: args.state as RunState } : {}) };
  return paginate(args, {
    order: "desc",
    find: async ({ keyset, orderBy, take }) => {
      const rows = await ctx.db.run.findMany({ where: { AND: [where, ...keyset] }, orderBy, take });
      for (const row of rows) ctx.loaders.run.prime(row.id, row); // module.run, job.run, … need no query
      return rows;
    },
    count: () => ctx.db.run.count({ where }),
  });
}

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

const lastOfKind = (artifacts: readonly Artifact[], kind: ArtifactKind) =>
  artifacts.findLast((a) => a.kind === kind) ?? null;

async function finalModel(run: Run, ctx: ApiContext): Promise<Artifact | null> {
  const artifacts = await ctx.loaders.artifactsByRun.load(run.id);
  return (
    lastOfKind(artifacts, ArtifactKind.FINAL_MODEL_ONNX) ?? lastOfKind(artifacts, ArtifactKind.FINAL_WEIGHTS)
  );
}

/** The meta model that incubated a run's modules: the one given, else the one it pre-trained. */
async function metaModelOfRun(run: Run, ctx: ApiContext): Promise<MetaModel | null> {
  if (run.metaModelId) return ctx.loaders.metaModel.load(run.metaModelId);
  return ctx.loaders.metaModelBySourceRun.load(run.id);
}

/** The job result's data stats (workers store the job's `JobResult`), with the enum spelling. */
function dataStatsOf(job: Job) {
  const data = storedJobResult(job.result)?.data;
  return data ? dataStatsOut(data) : null;
}

export const runResolvers = {
  Query: {
    runs: (_: unknown, args: PageArgs & { state?: string | null }, ctx: ApiContext) =>
      runsConnection(ctx, args),
    run: (_: unknown, args: { id: string }, ctx: ApiContext) =>
      ctx.loaders.run.load(fromGlobalId("Run", args.id, "id")),
    metaModels: (_: unknown, args: PageArgs, ctx: ApiContext) =>
      paginate(args, {
        order: "asc",
        find: ({ keyset, orderBy, take }) =>
          ctx.db.metaModel.findMany({ where: { AND: keyset }, orderBy, take }),
        count: () => ctx.db.metaModel.count(),
      }),
    metaModel: (_: unknown, args: { id: string }, ctx: ApiContext) =>
      ctx.loaders.metaModel.load(fromGlobalId("MetaModel", args.id, "id")),
  },
  Run: {
    id: (r: Run) => toGlobalId("Run", r.id),
    architecture: async (r: Run, _: unknown, ctx: ApiContext) =>
      required(await ctx.loaders.architecture.load(r.architectureId), "architecture"),
    dataset: async (r: Run, _: unknown, ctx: ApiContext) =>
      required(await ctx.loaders.dataset.load(r.datasetId), "dataset"),
    metaModel: (r: Run, _: unknown, ctx: ApiContext) =>
      r.metaModelId ? ctx.loaders.metaModel.load(r.metaModelId) : null,
    accuracy: (r: Run) => storedJobResult(r.result)?.evalAccuracy ?? null,
    placement: (r: Run) => runPlacement(r.placement),
    result: (r: Run) => r.result ?? null,
    modules: (r: Run, _: unknown, ctx: ApiContext) => ctx.loaders.modulesByRun.load(r.id),
    jobs: (r: Run, _: unknown, ctx: ApiContext) => ctx.loaders.jobsByRun.load(r.id),
    stages: async (r: Run, _: unknown, ctx: ApiContext) => stagesOf(await ctx.loaders.jobsByRun.load(r.id)),
    artifacts: async (r: Run, args: { kind?: ArtifactKind | null }, ctx: ApiContext) => {
      const artifacts = await ctx.loaders.artifactsByRun.load(r.id);
      return args.kind == null ? artifacts : artifacts.filter((a) => a.kind === args.kind);
    },
    finalModel: (r: Run, _: unknown, ctx: ApiContext) => finalModel(r, ctx),
    producedMetaModel: (r: Run, _: unknown, ctx: ApiContext) => ctx.loaders.metaModelBySourceRun.load(r.id),
    events: async (
      r: Run,
      args: { afterSeq: number; first: number; after?: string | null; moduleIndex?: number | null },
      ctx: ApiContext,
    ) => {
      if (args.afterSeq < 0) throw badArgument("afterSeq", `must be ≥ 0, got ${args.afterSeq}`);
      if (args.first < 0 || args.first > MAX_EVENTS_PAGE) {
        throw badArgument("first", `must be between 0 and ${MAX_EVENTS_PAGE}, got ${args.first}`);
      }
      let from = args.afterSeq;
      if (args.after != null) {
        const match = /^seq:(\d+)$/.exec(Buffer.from(args.after, "base64url").toString("utf8"));
        if (!match) throw badArgument("after", `"${args.after}" is not a cursor from this connection`);
        from = Math.max(from, Number(match[1]));
      }
      const where: Prisma.RunEventWhereInput = {
        runId: r.id,
        ...(args.moduleIndex != null ? { moduleIdx: args.moduleIndex } : {}),
      };
      const rows = await ctx.db.runEvent.findMany({
        where: { ...where, seq: { gt: from } },
        orderBy: { seq: "asc" },
        take: args.first + 1,
      });
      const more = rows.length > args.first;
      const events = rows.slice(0, args.first).map(parseRunEvent);
      const edges = events.map((node) => ({
        cursor: Buffer.from(`seq:${node.seq}`, "utf8").toString("base64url"),
        node,
      }));
      return {
        edges,
        nodes: events,
        pageInfo: {
          hasNextPage: more,
          hasPreviousPage: from > 0,
          startCursor: edges[0]?.cursor ?? null,
          endCursor: edges.at(-1)?.cursor ?? null,
        },
        totalCount: () => ctx.db.runEvent.count({ where }),
      };
    },
  },
  Module: {
    id: (m: Module) => toGlobalId("Module", m.id),
    run: async (m: Module, _: unknown, ctx: ApiContext) =>
      required(await ctx.loaders.run.load(m.runId), "run"),
    jobs: (m: Module, _: unknown, ctx: ApiContext) => ctx.loaders.jobsByModule.load(m.id),
    attempts: async (m: Module, _: unknown, ctx: ApiContext) =>
      (await ctx.loaders.jobsByModule.load(m.id)).reduce((sum, j) => sum + j.attempts, 0),
    progress: async (m: Module, _: unknown, ctx: ApiContext) => {
      const event = await ctx.loaders.latestProgress.load(`${m.runId}:${m.index}`);
      if (!event) return null;
      const { step, totalSteps, loss, lr, imagesPerSecond, etaSeconds } = event;
      return { step, totalSteps, loss, lr, imagesPerSecond, etaSeconds, seq: event.seq, at: event.createdAt };
    },
    lineage: (m: Module) => m,
    dataStats: async (m: Module, _: unknown, ctx: ApiContext) =>
      (await ctx.loaders.jobsByModule.load(m.id)).map(dataStatsOf).findLast((d) => d !== null) ?? null,
  },
  /** The parent is the Module itself. */
  ModuleLineage: {
    module: (m: Module) => m,
    run: async (m: Module, _: unknown, ctx: ApiContext) =>
      required(await ctx.loaders.run.load(m.runId), "run"),
    shard: (m: Module) => m.shard,
    /** From the module's newest job spec: what the job trains with is what the spec says. */
    adapters: async (m: Module, _: unknown, ctx: ApiContext) => {
      const job = (await ctx.loaders.jobsByModule.load(m.id)).at(-1);
      if (!job) return [];
      const spec = parseStoredJobSpec(job.spec, job.id);
      const meta = spec.meta ?? metaConfigFor(spec.target, spec.split.length);
      return widthAdapters(spec.target, meta, spec.split.length, m.index);
    },
    metaModel: async (m: Module, _: unknown, ctx: ApiContext) => {
      const run = await ctx.loaders.run.load(m.runId);
      return run ? metaModelOfRun(run, ctx) : null;
    },
    checkpoints: async (m: Module, _: unknown, ctx: ApiContext) => {
      const jobs = await ctx.loaders.jobsByModule.load(m.id);
      const perJob = await ctx.loaders.artifactsByJob.loadMany(jobs.map((j) => j.id));
      return perJob
        .flatMap((artifacts) => {
          if (artifacts instanceof Error) throw artifacts;
          return artifacts.filter((a) => a.kind === ArtifactKind.CHECKPOINT);
        })
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
    },
    assembledInto: async (m: Module, _: unknown, ctx: ApiContext) =>
      lastOfKind(await ctx.loaders.artifactsByRun.load(m.runId), ArtifactKind.ASSEMBLED_MODEL),
  },
  Job: {
    id: (j: Job) => toGlobalId("Job", j.id),
    run: async (j: Job, _: unknown, ctx: ApiContext) => required(await ctx.loaders.run.load(j.runId), "run"),
    module: (j: Job, _: unknown, ctx: ApiContext) =>
      j.moduleId ? ctx.loaders.module.load(j.moduleId) : null,
    artifacts: (j: Job, _: unknown, ctx: ApiContext) => ctx.loaders.artifactsByJob.load(j.id),
    dataStats: dataStatsOf,
  },
  Artifact: {
    id: (a: Artifact) => toGlobalId("Artifact", a.id),
    sizeBytes: (a: Artifact) => Number(a.sizeBytes),
    downloadUrl: (a: Artifact) => `/artifacts/${a.sha256}`,
    run: (a: Artifact, _: unknown, ctx: ApiContext) => (a.runId ? ctx.loaders.run.load(a.runId) : null),
    job: (a: Artifact, _: unknown, ctx: ApiContext) => (a.jobId ? ctx.loaders.job.load(a.jobId) : null),
    module: async (a: Artifact, _: unknown, ctx: ApiContext) => {
      const job = a.jobId ? await ctx.loaders.job.load(a.jobId) : null;
      return job?.moduleId ? ctx.loaders.module.load(job.moduleId) : null;
    },
    assembledFrom: async (a: Artifact, _: unknown, ctx: ApiContext) => {
      if (!a.runId || !ASSEMBLED_KINDS.includes(a.kind)) return null;
      const run = await ctx.loaders.run.load(a.runId);
      if (run?.kind !== "INCUBATION") return null;
      return ctx.loaders.modulesByRun.load(run.id);
    },
  },
  MetaModel: {
    id: (m: MetaModel) => toGlobalId("MetaModel", m.id),
    dataset: (m: MetaModel, _: unknown, ctx: ApiContext) =>
      m.datasetId ? ctx.loaders.dataset.load(m.datasetId) : null,
    sourceRun: (m: MetaModel, _: unknown, ctx: ApiContext) =>
      m.sourceRunId ? ctx.loaders.run.load(m.sourceRunId) : null,
    checkpoint: (m: MetaModel, _: unknown, ctx: ApiContext) =>
      m.checkpointId ? ctx.loaders.artifact.load(m.checkpointId) : null,
    compatibleWith: async (m: MetaModel, args: { architectureId: string }, ctx: ApiContext) => {
      const arch = await ctx.loaders.architecture.load(
        fromGlobalId("Architecture", args.architectureId, "architectureId"),
      );
      if (!arch) throw badArgument("architectureId", `no architecture ${args.architectureId}`);
      const target = targetConfig(arch);
      const reasons = metaIncompatibility(target, metaModelConfig(m, target), arch.moduleSplit.length);
      return {
        compatible: reasons.length === 0,
        reasons,
        metaWidth: m.width,
        targetWidth: arch.width,
        needsAdapters: m.width !== arch.width,
      };
    },
  },
};
