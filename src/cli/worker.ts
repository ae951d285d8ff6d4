import { resolve } from "node:path";
import { Command } from "commander";
import {
  assertProviderAvailable,
  EXECUTION_PROVIDERS,
  type ExecutionProvider,
} from "../engine/runtime/providers.ts";
import { createLogger } from "../platform/logger.ts";
import { openPlatform } from "../platform/platform.ts";
import { startWorker } from "../platform/worker/start.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";
import { BIN_PATH } from "./paths.ts";
import { onShutdownSignal } from "./shutdown.ts";

export function workerCommand(): Command {
  return new Command("worker")
    .description(
      "claim training jobs from the queue and run them (needs DATABASE_URL of the platform's database)",
    )
    .option("--threads <n>", "intra-op threads per job (default: ONNX Runtime's choice)")
    .option(
      "--device <provider>",
      `ONNX Runtime execution provider: ${EXECUTION_PROVIDERS.join(", ")}`,
      "cpu",
    )
    .option("--concurrency <n>", "jobs this process runs at once (each in its own child process)", "1")
    .option("--id <name>", "worker id shown in the API (default host:pid)")
    .option("--heartbeat-ms <ms>", "heartbeat interval", "5000")
    .option("--stale-after-ms <ms>", "retry a job whose worker has been silent this long", "30000")
    .action(
      async (opts: {
        threads?: string;
        id?: string;
        heartbeatMs: string;
        staleAfterMs: string;
        device: string;
        concurrency: string;
      }) => {
        const config = loadConfigOrExit();
        if (!EXECUTION_PROVIDERS.includes(opts.device as ExecutionProvider)) {
          exitWithError(
            new Error(`--device must be one of ${EXECUTION_PROVIDERS.join(", ")}, got "${opts.device}"`),
          );
        }
        // Fail at start-up, not in the first job, when the provider cannot load here.
        try {
          assertProviderAvailable(opts.device as ExecutionProvider);
        } catch (error) {
          exitWithError(error);
        }
        const concurrency = Number(opts.concurrency);
        if (!Number.isInteger(concurrency) || concurrency < 1) {
          exitWithError(new Error(`--concurrency must be a whole number ≥ 1, got "${opts.concurrency}"`));
        }
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
        const started: Awaited<ReturnType<typeof startWorker>>[] = [];
        for (let i = 0; i < concurrency; i++) {
          started.push(
            await startWorker({
              db: platform.db,
              databaseUrl: platform.database.url,
              dataDir: resolve(config.DATA_DIR),
              logger,
              bin: BIN_PATH,
              device: opts.device as ExecutionProvider,
              ...(opts.threads ? { threads: Number(opts.threads) } : {}),
              ...(opts.id ? { workerId: concurrency > 1 ? `${opts.id}-${i + 1}` : opts.id } : {}),
              heartbeatMs: Number(opts.heartbeatMs),
              staleAfterMs: Number(opts.staleAfterMs),
            }),
          );
        }
        onShutdownSignal(logger, async () => {
          for (const w of started) await w.stop();
          await platform.close();
        });
      },
    );
}
