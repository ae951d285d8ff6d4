/** The whole platform as the environment describes it, for `serve` and `demo`. */
import {
  artifactStoreFromConfig,
  type Config,
  dataRootsFromConfig,
  introspectionFromConfig,
  limitsFromConfig,
} from "../platform/config/config.ts";
import type { Logger } from "../platform/logger.ts";
import { type LocalPlatform, startLocalPlatform } from "./local-platform.ts";
import { BIN_PATH } from "./paths.ts";

/**
 * DATABASE_URL (or an embedded PostgreSQL), DATA_DIR, ARTIFACT_STORE and S3_*, PORT and HOST, the API's limits, data roots
 * and introspection, with `workers` local workers.
 */
export function startConfiguredPlatform(
  config: Config,
  logger: Logger,
  workers: number,
): Promise<LocalPlatform> {
  return startLocalPlatform({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    port: config.PORT,
    host: config.HOST,
    logger,
    workers,
    bin: BIN_PATH,
    api: {
      limits: limitsFromConfig(config),
      dataRoots: dataRootsFromConfig(config),
      introspection: introspectionFromConfig(config),
      artifactQuotaBytes: config.ARTIFACT_QUOTA_BYTES,
    },
    artifactStore: artifactStoreFromConfig(config),
    auth: { auth: config.AUTH_MODE, allowedOrigins: config.ALLOWED_ORIGINS },
  });
}
