import { join, resolve } from "node:path";
import { Command } from "commander";
import { chooseDevice, DEVICE_REQUESTS, type DeviceRequest } from "../engine/runtime/device.ts";
import type { ExecutionProvider } from "../engine/runtime/providers.ts";
import { openArtifactStore } from "../platform/artifacts/open.ts";
import { artifactStoreFromConfig, type Config, shardCacheDir } from "../platform/config/config.ts";
import { createLogger, type Logger } from "../platform/logger.ts";
import { type MetricsServer, startMetricsServer } from "../platform/metrics/metrics-server.ts";
import { openPlatform } from "../platform/platform.ts";
import { parseLabels, parseShards } from "../platform/queue/placement.ts";
import { ApiWorkerBackend } from "../platform/worker/api-backend.ts";
import { startWorker } from "../platform/worker/start.ts";
import { defaultWorkerId, TrainingWorker } from "../platform/worker/worker.ts";
import { apiUrlProblem } from "./api-client.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";
import { BIN_PATH } from "./paths.ts";
import { onShutdownSignal } from "./shutdown.ts";

export function workerCommand(): Command {
  return new Command("worker")
    .description(
      "claim training jobs and run them: from the platform's database (DATABASE_URL), or through its API (--api URL --token T) from another site",
    )
    .option(
      "--api <url>",
      "work through the platform's API (http://host:port/graphql) instead of its database",
    )
    .option(
      "--token <token>",
      "worker token for --api (inc_wt_…; `incubator worker-token create`); or INCUBATOR_WORKER_TOKEN",
    )
    .option(
      "--labels <list>",
      "labels this worker has, e.g. site=a,gpu=h100 (jobs requiring labels go only to workers with them)",
    )
    .option(
      "--shards <list>",
      "data shards this worker holds, e.g. 0,2: it takes only modular jobs of decentralised runs on them",
    )
    .option("--threads <n>", "intra-op threads per job (default: ONNX Runtime's choice)")
    .option(
      "--device <provider>",
      `ONNX Runtime execution provider: ${DEVICE_REQUESTS.join(", ")} (auto: cuda when it loads, else cpu, and the log says which)`,
      "cpu",
    )
    .option("--concurrency <n>", "jobs this process runs at once (each in its own child process)", "1")
    .option("--id <name>", "worker id shown in the API (default host:pid)")
    .option("--heartbeat-ms <ms>", "heartbeat interval", "5000")
    .option("--stale-after-ms <ms>", "retry a job whose worker has been silent this long", "30000")
    .option(
      "--metrics-port <port>",
      "serve this process's metrics (job timings it applied, process figures) at http://<metrics-host>:<port>/metrics, no token",
    )
    .option("--metrics-host <host>", "interface for --metrics-port", "127.0.0.1")
    .action(
      async (opts: {
        threads?: string;
        id?: string;
        heartbeatMs: string;
        staleAfterMs: string;
        device: string;
        concurrency: string;
        api?: string;
        token?: string;
        labels?: string;
        shards?: string;
        metricsPort?: string;
        metricsHost: string;
      }) => {
        const config = loadConfigOrExit();
        const metricsPort = opts.metricsPort === undefined ? undefined : Number(opts.metricsPort);
        if (
          metricsPort !== undefined &&
          !(Number.isInteger(metricsPort) && metricsPort >= 0 && metricsPort < 65536)
        ) {
          exitWithError(
            new Error(`--metrics-port must be a port number (0–65535), got "${opts.metricsPort}"`),
          );
        }
        if (!DEVICE_REQUESTS.includes(opts.device as DeviceRequest)) {
          exitWithError(
            new Error(`--device must be one of ${DEVICE_REQUESTS.join(", ")}, got "${opts.device}"`),
          );
        }
        // Fail at start-up, not in the first job, when the provider cannot load here; `auto`
        // resolves to one provider now, so every job of this worker runs on the same one.
        const device = await chooseDevice(opts.device as DeviceRequest).catch((error) =>
          exitWithError(error),
        );
        const logger = createLogger(config.LOG_LEVEL, "worker");
        // The default (cpu) needs no word; any other request says what it got and why.
        if (opts.device !== "cpu")
          logger.info({ device: device.provider, requested: opts.device }, device.note);
        const concurrency = Number(opts.concurrency);
        if (!Number.isInteger(concurrency) || concurrency < 1) {
          exitWithError(new Error(`--concurrency must be a whole number ≥ 1, got "${opts.concurrency}"`));
        }
        let labels: string[] = [];
        let shards: number[] = [];
        try {
          labels = parseLabels(opts.labels);
          shards = parseShards(opts.shards);
        } catch (error) {
          exitWithError(error);
        }
        const idOf = (i: number) =>
          opts.id
            ? concurrency > 1
              ? `${opts.id}-${i + 1}`
              : opts.id
            : `${defaultWorkerId()}${concurrency > 1 ? `-${i + 1}` : ""}`;
        const startMetrics = async (logger: Logger) =>
          metricsPort === undefined
            ? undefined
            : startMetricsServer({ host: opts.metricsHost, port: metricsPort, logger }).catch(
                (error: unknown) =>
                  exitWithError(new Error(`--metrics-port: cannot listen: ${(error as Error).message}`)),
              );
        if (opts.api) {
          await startApiWorkers({
            ...opts,
            api: opts.api,
            device: device.provider,
            config,
            logger,
            labels,
            shards,
            concurrency,
            idOf,
            startMetrics,
          });
          return;
        }
        if (!config.DATABASE_URL) {
          exitWithError(
            new Error(
              "DATABASE_URL: a worker joins an existing platform; set DATABASE_URL to its database, or work through its API with --api <url> --token <token> (npm start runs a local worker itself)",
            ),
          );
        }
        // A database worker uses the platform's store itself, so it needs the API's ARTIFACT_STORE
        // and S3_* settings (and S3 credentials); API workers (--api) need neither.
        const artifacts = openArtifactStore(artifactStoreFromConfig(config));
        try {
          await artifacts.check();
        } catch (error) {
          exitWithError(error);
        }
        const metrics = await startMetrics(logger);
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
              artifacts,
              logger,
              bin: BIN_PATH,
              device: device.provider,
              ...(opts.threads ? { threads: Number(opts.threads) } : {}),
              workerId: idOf(i),
              labels,
              shards,
              heartbeatMs: Number(opts.heartbeatMs),
              staleAfterMs: Number(opts.staleAfterMs),
              artifactQuotaBytes: config.ARTIFACT_QUOTA_BYTES,
            }),
          );
        }
        onShutdownSignal(logger, async () => {
          for (const w of started) await w.stop();
          await metrics?.close();
          await platform.close();
        });
      },
    );
}

/**
 * Workers at another site: the same TrainingWorker over the API backend. No database is opened
 * (not even an embedded one); the token is checked before any work is taken.
 */
async function startApiWorkers(o: {
  api: string;
  token?: string;
  config: Config;
  logger: Logger;
  labels: string[];
  shards: number[];
  concurrency: number;
  idOf: (i: number) => string;
  threads?: string;
  heartbeatMs: string;
  device: ExecutionProvider;
  startMetrics: (logger: Logger) => Promise<MetricsServer | undefined>;
}): Promise<void> {
  const token = o.token ?? process.env.INCUBATOR_WORKER_TOKEN;
  if (!token) {
    exitWithError(
      new Error(
        "--token: --api needs a worker token (inc_wt_…); create one with `incubator worker-token create --name <site>`",
      ),
    );
  }
  const urlProblem = apiUrlProblem(o.api);
  if (urlProblem) exitWithError(new Error(`--api: ${urlProblem}`));
  const { logger } = o;
  const metrics = await o.startMetrics(logger);
  const dataDir = resolve(o.config.DATA_DIR);
  const workers: TrainingWorker[] = [];
  const stopAll = async () => {
    for (const w of workers) await w.stop();
    await metrics?.close();
  };
  for (let i = 0; i < o.concurrency; i++) {
    const workerId = o.idOf(i);
    const backend = new ApiWorkerBackend({
      apiUrl: o.api,
      token,
      identity: { workerId, labels: o.labels, shards: o.shards },
      cacheDir: join(dataDir, "artifact-cache"),
    });
    try {
      const granted = await backend.connect();
      if (i === 0)
        logger.info({ api: o.api, token: granted.name, labels: granted.labels }, "worker token accepted");
    } catch (error) {
      exitWithError(error);
    }
    const worker = new TrainingWorker({
      backend,
      logger,
      workDir: join(dataDir, "work"),
      // Shards this machine has no files for come from the API server, then stay cached here.
      dataCacheDir: shardCacheDir(dataDir),
      dataServer: { baseUrl: o.api, token },
      bin: BIN_PATH,
      workerId,
      device: o.device,
      heartbeatMs: Number(o.heartbeatMs),
      ...(o.threads ? { threads: Number(o.threads) } : {}),
      onFatal: (error) => {
        void stopAll().finally(() => exitWithError(error));
      },
    });
    await worker.start();
    workers.push(worker);
  }
  onShutdownSignal(logger, stopAll);
}
