/**
 * The figures that live in the database — runs, modules, queue depth, workers — read when
 * `/metrics` is scraped, so any one API process shows the whole platform's, whichever process
 * or machine did the work. Each is ONE grouped query (never a query per row); the five run
 * concurrently and the gauges are replaced together once all have answered.
 */
import type { Db } from "../db/client.ts";
import {
  ModuleState,
  modulesByState,
  queueDepth,
  RunKind,
  RunState,
  runsByState,
  StageKind,
  workerLastHeartbeat,
  workerStepsPerSecond,
} from "./metrics.ts";

/** Workers shown: those that heartbeated this recently (seconds), newest first, at most MAX_WORKERS. */
export const WORKER_WINDOW_SECONDS = 3600;
export const MAX_WORKERS = 200;
/** How far back a running job's newest progress event is looked for (events of its run, newest first). */
const PROGRESS_LOOKBACK_EVENTS = 1000;

interface WorkerHeartbeat {
  worker: string;
  at: number;
}
interface WorkerSpeed {
  worker: string;
  steps: number | null;
}

export async function refreshDatabaseFigures(db: Db): Promise<void> {
  const [runs, modules, queued, heartbeats, speeds] = await Promise.all([
    db.run.groupBy({ by: ["state", "kind"], _count: { _all: true } }),
    db.module.groupBy({ by: ["state"], _count: { _all: true } }),
    db.job.groupBy({ by: ["stage"], where: { state: "QUEUED" }, _count: { _all: true } }),
    // Heartbeats are written with the database's now() (job-lifecycle.ts), read on the same clock.
    db.$queryRaw<WorkerHeartbeat[]>`
      select "worker_id" as worker, extract(epoch from max("heartbeat_at"))::float8 as at
      from "job"
      where "worker_id" is not null
        and "heartbeat_at" > now() - make_interval(secs => ${WORKER_WINDOW_SECONDS})
      group by "worker_id"
      order by max("heartbeat_at") desc
      limit ${MAX_WORKERS}`,
    // Each running job's newest progress event of its current attempt (created after its claim):
    // steps/s = images/s ÷ the batch size its spec trains with.
    db.$queryRaw<WorkerSpeed[]>`
      select j."worker_id" as worker,
        sum((p."payload"->>'imagesPerSecond')::float8
            / nullif((j."spec"->'recipe'->>'batchSize')::float8, 0))::float8 as steps
      from "job" j
      left join "module" m on m."id" = j."module_id"
      cross join lateral (
        select e."payload" from (
          select * from "run_event" where "run_id" = j."run_id"
          order by "seq" desc limit ${PROGRESS_LOOKBACK_EVENTS}
        ) e
        where e."type" = 'PROGRESS'
          and e."module_index" is not distinct from m."index"
          and e."payload"->>'stage' = j."stage"::text
          and e."created_at" >= j."started_at"
        order by e."seq" desc limit 1
      ) p
      where j."state" = 'RUNNING' and j."worker_id" is not null
      group by j."worker_id"
      limit ${MAX_WORKERS}`,
  ]);

  // Every state of a closed set gets a series, zero included, so a panel's line does not vanish.
  for (const state of Object.values(RunState))
    for (const kind of Object.values(RunKind)) runsByState.set({ state, kind }, 0);
  for (const r of runs) runsByState.set({ state: r.state, kind: r.kind }, r._count._all);
  for (const state of Object.values(ModuleState)) modulesByState.set({ state }, 0);
  for (const m of modules) modulesByState.set({ state: m.state }, m._count._all);
  for (const stage of Object.values(StageKind)) queueDepth.set({ stage }, 0);
  for (const q of queued) queueDepth.set({ stage: q.stage }, q._count._all);
  // Workers come and go: only those the window still holds keep a series.
  workerLastHeartbeat.reset();
  for (const h of heartbeats) workerLastHeartbeat.set({ worker: h.worker }, h.at);
  workerStepsPerSecond.reset();
  for (const s of speeds) if (s.steps !== null) workerStepsPerSecond.set({ worker: s.worker }, s.steps);
}
