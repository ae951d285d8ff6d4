import { type Config, ConfigError, loadConfig } from "../platform/config/config.ts";

/** Print a user-facing failure as one line and exit non-zero. */
export function exitWithError(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  const known = error instanceof ConfigError || /^DATABASE_URL:|^invalid configuration/.test(message);
  process.stderr.write(`incubator: ${message}\n`);
  if (!known && error instanceof Error && error.stack && process.env.LOG_LEVEL === "debug") {
    process.stderr.write(`${error.stack}\n`);
  }
  process.exit(1);
}

/** The validated configuration, or exit with one line naming the bad variable. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    exitWithError(error);
  }
}
