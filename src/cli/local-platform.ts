/**
 * The whole platform in one process, as `npm start` / `incubator serve` / `incubator demo` run
 * it: database (external or embedded) and migrations, the job queue and dispatcher, the GraphQL
 * API, and local training workers (each job still runs in its own child process).
 *
 * It composes the platform with the API server, so it lives here at the top of the layering
 * (engine ← data ← incubation ← platform ← api ← cli), not in src/platform.
 */
import { resolve } from "node:path";
import { type ApiServer, type ApiServerOptions, startApiServer } from "../api/server.ts";
import { openArtifactStore } from "../platform/artifacts/open.ts";
import type { ArtifactStoreSettings } from "../platform/artifacts/settings.ts";
import type { ArtifactStore } from "../platform/artifacts/store.ts";
import { DEFAULT_EXTRA_DATA_ROOTS, shardCacheDir } from "../platform/config/config.ts";
import { Dispatcher } from "../platform/dispatch/dispatcher.ts";
import { startStaleJobSweep } from "../platform/dispatch/stale-sweep.ts";
import type { Logger } from "../platform/logger.ts";
import { openPlatform, type Platform } from "../platform/platform.ts";
import { openQueue } from "../platform/queue/queue.ts";
import { JobLifecycle } from "../platform/worker/job-lifecycle.ts";
import { startWorker } from "../platform/worker/start.ts";

export interface LocalPlatformOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  port: number;
  host?: string;
  logger: Logger;
  /** Local training workers (0: API only; workers elsewhere). */
  workers: number;
  /** The `incubator` entry script, for the workers' job processes. */
  bin: string;
  threads?: number;
  /** Hand a job whose worker has been silent this long to another (default 30 s). */
  staleAfterMs?: number;
  /**
   * The API's request limits, data roots (default: dataDir and /usr/share/datasets) and
   * introspection switch (default on).
   */
  api?: Pick<ApiServerOptions, "limits" | "dataRoots" | "introspection" | "artifactQuotaBytes">;
  /** Where artifacts live (default: `dataDir/artifacts`); the API and the local workers share it. */
  artifactStore?: ArtifactStoreSettings;
  /** AUTH_MODE (default `tokens`), ALLOWED_ORIGINS and the subscription re-check period: api/auth/. */
  auth?: Pick<ApiServerOptions, "auth" | "allowedOrigins" | "authRecheckMs">;
}

export interface LocalPlatform {
  platform: Platform;
  api: ApiServer;
  artifacts: ArtifactStore;
  close(): Promise<void>;
}

export async function startLocalPlatform(o: LocalPlatformOptions): Promise<LocalPlatform> {
  const dataDir = resolve(o.dataDir);
  const platform = await openPlatform({ databaseUrl: o.databaseUrl, dataDir, logger: o.logger });
  const closers: (() => Promise<void>)[] = [() => platform.close()];
  const close = async () => {
    for (const c of closers.reverse())
      await c().catch((e) => o.logger.warn({ err: e }, "shutdown step failed"));
  };
  try {
    const boss = await openQueue(platform.database.url);
    closers.push(() => boss.stop({ graceful: true, wait: true }));
    const dispatcher = new Dispatcher(platform.db, boss, o.logger);
    const artifacts = openArtifactStore(o.artifactStore ?? { kind: "local", dataDir });
    await artifacts.check(); // a missing bucket or read-only folder stops start-up, not the first job
    // The API process watches for silent workers too: API workers run no sweep of their own.
    const stopSweep = startStaleJobSweep({
      dispatcher,
      db: platform.db,
      staleAfterMs: o.staleAfterMs ?? 30_000,
      logger: o.logger,
    });
    closers.push(async () => stopSweep());
    // One quota for the API's uploads and every worker's artifacts (ARTIFACT_QUOTA_BYTES).
    const quota = o.api?.artifactQuotaBytes ? { artifactQuotaBytes: o.api.artifactQuotaBytes } : {};
    const api = await startApiServer({
      db: platform.db,
      databaseUrl: platform.database.url,
      logger: o.logger,
      port: o.port,
      ...(o.host ? { host: o.host } : {}),
      dispatcher,
      artifacts,
      shardCacheDir: shardCacheDir(dataDir),
      lifecycle: new JobLifecycle(platform.db, boss, dispatcher, artifacts, o.logger, quota),
      dataRoots: [dataDir, ...DEFAULT_EXTRA_DATA_ROOTS],
      ...o.api,
      ...o.auth,
    });
    closers.push(() => api.close());
    for (let i = 0; i < o.workers; i++) {
      const worker = await startWorker({
        db: platform.db,
        databaseUrl: platform.database.url,
        dataDir,
        artifacts,
        logger: o.logger,
        bin: o.bin,
        workerId: `local-${i + 1}`,
        ...quota,
        ...(o.staleAfterMs ? { staleAfterMs: o.staleAfterMs } : {}),
        ...(o.threads ? { threads: o.threads } : {}),
      });
      closers.push(() => worker.stop());
    }
    return { platform, api, artifacts, close };
  } catch (error) {
    await close();
    throw error;
  }
}
