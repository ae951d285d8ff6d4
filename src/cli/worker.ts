import { resolve } from "node:path";
import { Command } from "commander";
import { loadConfig } from "../platform/config/config.ts";
import { createLogger } from "../platform/logger.ts";
import { openPlatform } from "../platform/platform.ts";
import { startWorker } from "../platform/worker/start.ts";
import { exitWithError } from "./errors.ts";
import { BIN_PATH } from "./paths.ts";
import { onShutdownSignal } from "./shutdown.ts";

export function workerCommand(): Command {
  return new Command("worker")
    .description(
      "claim training jobs from the queue and run them (needs DATABASE_URL of the platform's database)",
    )
    .option("--threads <n>", "intra-op threads per job (default: ONNX Runtime's choice)")
    .option("--id <name>", "worker id shown in the API (default host:pid)")
    .option("--heartbeat-ms <ms>", "heartbeat interval", "5000")
    .option("--stale-after-ms <ms>", "retry a job whose worker has been silent this long", "30000")
    .action(async (opts: { threads?: string; id?: string; heartbeatMs: string; staleAfterMs: string }) => {
      const config = loadConfig();
      if (!config.DATABASE_URL) {
        exitWithError(
          new Error(
            "DATABASE_URL: a worker joins an existing platform; set DATABASE_URL to its database (npm start runs a local worker itself)",
          ),
        );
      }
      const logger = createLogger(config.LOG_LEVEL, "worker");
      const platform = await openPlatform({
        databaseUrl: config.DATABASE_URL,
        dataDir: config.DATA_DIR,
        logger,
      });
      const worker = await startWorker({
        db: platform.db,
        databaseUrl: platform.database.url,
        dataDir: resolve(config.DATA_DIR),
        logger,
        bin: BIN_PATH,
        ...(opts.threads ? { threads: Number(opts.threads) } : {}),
        ...(opts.id ? { workerId: opts.id } : {}),
        heartbeatMs: Number(opts.heartbeatMs),
        staleAfterMs: Number(opts.staleAfterMs),
      });
      onShutdownSignal(logger, async () => {
        await worker.stop();
        await platform.close();
      });
    });
}
