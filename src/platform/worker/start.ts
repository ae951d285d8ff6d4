/** Wire a worker: queue, dispatcher, artifact store, and the worker loop. */
import { join } from "node:path";
import type { ExecutionProvider } from "../../engine/runtime/providers.ts";
import { LocalArtifactStore } from "../artifacts/store.ts";
import { shardCacheDir } from "../config/config.ts";
import type { Db } from "../db/client.ts";
import { Dispatcher } from "../dispatch/dispatcher.ts";
import type { Logger } from "../logger.ts";
import { openQueue } from "../queue/queue.ts";
import { TrainingWorker } from "./worker.ts";

export interface StartWorkerOptions {
  db: Db;
  databaseUrl: string;
  dataDir: string;
  logger: Logger;
  bin: string;
  threads?: number;
  device?: ExecutionProvider;
  workerId?: string;
  heartbeatMs?: number;
  staleAfterMs?: number;
}

export async function startWorker(
  o: StartWorkerOptions,
): Promise<{ worker: TrainingWorker; stop(): Promise<void> }> {
  const boss = await openQueue(o.databaseUrl);
  const dispatcher = new Dispatcher(o.db, boss, o.logger);
  const worker = new TrainingWorker({
    db: o.db,
    boss,
    dispatcher,
    store: new LocalArtifactStore(join(o.dataDir, "artifacts")),
    logger: o.logger,
    workDir: join(o.dataDir, "work"),
    dataCacheDir: shardCacheDir(o.dataDir),
    bin: o.bin,
    ...(o.threads ? { threads: o.threads } : {}),
    ...(o.device ? { device: o.device } : {}),
    ...(o.workerId ? { workerId: o.workerId } : {}),
    ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
    ...(o.staleAfterMs ? { staleAfterMs: o.staleAfterMs } : {}),
  });
  await worker.start();
  return {
    worker,
    stop: async () => {
      await worker.stop();
      await boss.stop({ graceful: true, wait: true });
    },
  };
}
