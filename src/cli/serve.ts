import { Command } from "commander";
import { createLogger } from "../platform/logger.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";
import { startConfiguredPlatform } from "./platform.ts";
import { onShutdownSignal } from "./shutdown.ts";

export function serveCommand(): Command {
  return new Command("serve")
    .description(
      "Start the platform: GraphQL API (HTTP and WebSocket on /graphql), job dispatch and local training workers; embedded PostgreSQL when DATABASE_URL is unset",
    )
    .option("-p, --port <port>", "port to listen on (overrides PORT)")
    .option("-w, --workers <n>", "local training workers (0: API only, workers run elsewhere)", "1")
    .action(async (opts: { port?: string; workers: string }) => {
      const config = loadConfigOrExit(
        opts.port !== undefined ? { ...process.env, PORT: opts.port } : process.env,
      );
      const workers = Number(opts.workers);
      if (!Number.isInteger(workers) || workers < 0)
        exitWithError(new Error(`--workers must be 0 or more, got "${opts.workers}"`));
      const logger = createLogger(config.LOG_LEVEL);
      try {
        const local = await startConfiguredPlatform(config, logger, workers);
        logger.info(
          { url: local.api.url, ws: local.api.wsUrl, dashboard: local.api.dashboardUrl, workers },
          "incubator API ready",
        );
        onShutdownSignal(logger, () => local.close());
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
          exitWithError(new Error(`PORT=${config.PORT} is already in use; choose another with PORT=<n>`));
        }
        exitWithError(error);
      }
    });
}
