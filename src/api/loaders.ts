/**
 * Per-request DataLoaders: every list field that reads a related row goes through one of these,
 * so a page of 20 runs with their architectures costs one architecture query, not 20. A fresh
 * set is made for each HTTP request and each subscription operation (server.ts), so nothing is
 * cached across requests.
 */
import DataLoader from "dataloader";
import type {
  Architecture,
  Artifact,
  Dataset,
  Job,
  MetaModel,
  Module,
  Project,
  Run,
  WorkerToken,
} from "../generated/prisma/client.ts";
import type { Db } from "../platform/db/client.ts";
import { parseRunEvent, type RunEventOf } from "../platform/events/run-event.ts";

/** The latest PROGRESS event of a module. */
export type ProgressEvent = RunEventOf<"PROGRESS">;

export interface Loaders {
  architecture: DataLoader<string, Architecture | null>;
  dataset: DataLoader<string, Dataset | null>;
  metaModel: DataLoader<string, MetaModel | null>;
  run: DataLoader<string, Run | null>;
  module: DataLoader<string, Module | null>;
  job: DataLoader<string, Job | null>;
  artifact: DataLoader<string, Artifact | null>;
  workerToken: DataLoader<string, WorkerToken | null>;
  project: DataLoader<string, Project | null>;
  /** A run's modules by index. */
  modulesByRun: DataLoader<string, Module[]>;
  /** A run's jobs, oldest first. */
  jobsByRun: DataLoader<string, Job[]>;
  /** A module's jobs, oldest first. */
  jobsByModule: DataLoader<string, Job[]>;
  /** A run's artifacts, oldest first. */
  artifactsByRun: DataLoader<string, Artifact[]>;
  /** A job's artifacts, oldest first. */
  artifactsByJob: DataLoader<string, Artifact[]>;
  /** The meta model a META_PRETRAIN run produced. */
  metaModelBySourceRun: DataLoader<string, MetaModel | null>;
  /** Key `${runId}:${moduleIndex}`. */
  latestProgress: DataLoader<string, ProgressEvent | null>;
  /** Counts how many batched queries the loaders issued (tests and debugging). */
  stats: { batches: Record<string, number> };
}

function byId<T extends { id: string }>(
  stats: Loaders["stats"],
  name: string,
  fetch: (ids: string[]) => Promise<T[]>,
): DataLoader<string, T | null> {
  return new DataLoader(async (ids) => {
    stats.batches[name] = (stats.batches[name] ?? 0) + 1;
    const rows = await fetch([...ids]);
    const map = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => map.get(id) ?? null);
  });
}

function groupedBy<T>(
  stats: Loaders["stats"],
  name: string,
  key: (row: T) => string | null,
  fetch: (keys: string[]) => Promise<T[]>,
): DataLoader<string, T[]> {
  return new DataLoader(async (keys) => {
    stats.batches[name] = (stats.batches[name] ?? 0) + 1;
    const rows = await fetch([...keys]);
    const groups = new Map<string, T[]>(keys.map((k) => [k, []]));
    for (const row of rows) {
      const k = key(row);
      if (k !== null) groups.get(k)?.push(row);
    }
    return keys.map((k) => groups.get(k)!);
  });
}

const oldestFirst = [{ createdAt: "asc" as const }, { id: "asc" as const }];

export function createLoaders(db: Db): Loaders {
  const stats: Loaders["stats"] = { batches: {} };
  const loaders: Loaders = {
    stats,
    architecture: byId(stats, "architecture", (ids) =>
      db.architecture.findMany({ where: { id: { in: ids } } }),
    ),
    dataset: byId(stats, "dataset", (ids) => db.dataset.findMany({ where: { id: { in: ids } } })),
    metaModel: byId(stats, "metaModel", (ids) => db.metaModel.findMany({ where: { id: { in: ids } } })),
    run: byId(stats, "run", (ids) => db.run.findMany({ where: { id: { in: ids } } })),
    module: byId(stats, "module", (ids) => db.module.findMany({ where: { id: { in: ids } } })),
    job: byId(stats, "job", (ids) => db.job.findMany({ where: { id: { in: ids } } })),
    artifact: byId(stats, "artifact", (ids) => db.artifact.findMany({ where: { id: { in: ids } } })),
    workerToken: byId(stats, "workerToken", (ids) => db.workerToken.findMany({ where: { id: { in: ids } } })),
    project: byId(stats, "project", (ids) => db.project.findMany({ where: { id: { in: ids } } })),
    modulesByRun: groupedBy(
      stats,
      "modulesByRun",
      (m: Module) => m.runId,
      (runIds) => db.module.findMany({ where: { runId: { in: runIds } }, orderBy: { index: "asc" } }),
    ),
    jobsByRun: groupedBy(
      stats,
      "jobsByRun",
      (j: Job) => j.runId,
      (runIds) => db.job.findMany({ where: { runId: { in: runIds } }, orderBy: oldestFirst }),
    ),
    jobsByModule: groupedBy(
      stats,
      "jobsByModule",
      (j: Job) => j.moduleId,
      (moduleIds) => db.job.findMany({ where: { moduleId: { in: moduleIds } }, orderBy: oldestFirst }),
    ),
    artifactsByRun: groupedBy(
      stats,
      "artifactsByRun",
      (a: Artifact) => a.runId,
      (runIds) => db.artifact.findMany({ where: { runId: { in: runIds } }, orderBy: oldestFirst }),
    ),
    artifactsByJob: groupedBy(
      stats,
      "artifactsByJob",
      (a: Artifact) => a.jobId,
      (jobIds) => db.artifact.findMany({ where: { jobId: { in: jobIds } }, orderBy: oldestFirst }),
    ),
    metaModelBySourceRun: new DataLoader(async (runIds) => {
      stats.batches["metaModelBySourceRun"] = (stats.batches["metaModelBySourceRun"] ?? 0) + 1;
      const rows = await db.metaModel.findMany({ where: { sourceRunId: { in: [...runIds] } } });
      const map = new Map(rows.map((row) => [row.sourceRunId, row]));
      return runIds.map((id) => map.get(id) ?? null);
    }),
    latestProgress: new DataLoader(async (keys) => {
      stats.batches["latestProgress"] = (stats.batches["latestProgress"] ?? 0) + 1;
      const runIds = keys.map((k) => k.slice(0, k.lastIndexOf(":")));
      const indices = keys.map((k) => Number(k.slice(k.lastIndexOf(":") + 1)));
      // One index-backed lookup per key: walk the run's log backwards to its module's latest PROGRESS.
      const rows = await db.$queryRaw<
        { run_id: string; module_index: number; seq: number; payload: unknown; created_at: Date }[]
      >`
        select k.run_id::text as run_id, k.module_index, e.seq, e.payload, e.created_at
        from unnest(${runIds}::uuid[], ${indices}::int[]) as k(run_id, module_index)
        cross join lateral (
          select seq, payload, created_at from "run_event"
          where "run_id" = k.run_id and "module_index" = k.module_index and "type" = 'PROGRESS'
          order by seq desc limit 1
        ) e`;
      const map = new Map(
        rows.map((r) => {
          const event = parseRunEvent({
            runId: r.run_id,
            seq: r.seq,
            type: "PROGRESS",
            moduleIdx: r.module_index,
            payload: r.payload,
            createdAt: r.created_at,
          }) as ProgressEvent;
          return [`${r.run_id}:${r.module_index}` as string, event] as const;
        }),
      );
      return keys.map((k) => map.get(k) ?? null);
    }),
  };
  return loaders;
}
