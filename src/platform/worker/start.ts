/** Wire a worker that reaches the database: queue, dispatcher, job lifecycle, store, worker loop. */
import { join } from "node:path";
import type { ExecutionProvider } from "../../engine/runtime/providers.ts";
import type { ArtifactStore } from "../artifacts/store.ts";
import { graphCacheDir, shardCacheDir } from "../config/config.ts";
import type { Db } from "../db/client.ts";
import { Dispatcher } from "../dispatch/dispatcher.ts";
import { startStaleJobSweep } from "../dispatch/stale-sweep.ts";
import type { Logger } from "../logger.ts";
import { openQueue } from "../queue/queue.ts";
import { DbWorkerBackend } from "./backend.ts";
import { JobLifecycle } from "./job-lifecycle.ts";
import { defaultWorkerId, TrainingWorker } from "./worker.ts";

export interface StartWorkerOptions {
  db: Db;
  databaseUrl: string;
  dataDir: string;
  /** The platform's artifact store (`artifacts/open.ts`): a database worker reads and writes it directly. */
  artifacts: ArtifactStore;
  logger: Logger;
  bin: string;
  threads?: number;
  device?: ExecutionProvider;
  workerId?: string;
  heartbeatMs?: number;
  staleAfterMs?: number;
  /** Labels this worker has (placement.ts). */
  labels?: string[];
  /** Shards it is pinned to (empty: any job). */
  shards?: number[];
  /** Artifact bytes of a project without its own quota (ARTIFACT_QUOTA_BYTES). */
  artifactQuotaBytes?: number;
}

export async function startWorker(
  o: StartWorkerOptions,
): Promise<{ worker: TrainingWorker; stop(): Promise<void> }> {
  const boss = await openQueue(o.databaseUrl);
  const dispatcher = new Dispatcher(o.db, boss, o.logger);
  const workerId = o.workerId ?? defaultWorkerId();
  const lifecycle = new JobLifecycle(
    o.db,
    boss,
    dispatcher,
    o.artifacts,
    o.logger,
    o.artifactQuotaBytes === undefined ? {} : { artifactQuotaBytes: o.artifactQuotaBytes },
  );
  const worker = new TrainingWorker({
    backend: new DbWorkerBackend(lifecycle, o.artifacts, {
      workerId,
      labels: o.labels ?? [],
      shards: o.shards ?? [],
    }),
    logger: o.logger,
    workDir: join(o.dataDir, "work"),
    dataCacheDir: shardCacheDir(o.dataDir),
    graphCacheDir: graphCacheDir(o.dataDir),
    bin: o.bin,
    workerId,
    ...(o.threads ? { threads: o.threads } : {}),
    ...(o.device ? { device: o.device } : {}),
    ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
  });
  // Every worker also watches for silent peers, so recovery needs no extra service.
  const stopSweep = startStaleJobSweep({
    dispatcher,
    db: o.db,
    staleAfterMs: o.staleAfterMs ?? 30_000,
    logger: o.logger,
  });
  await worker.start();
  return {
    worker,
    stop: async () => {
      stopSweep();
      await worker.stop();
      await boss.stop({ graceful: true, wait: true });
    },
  };
}
