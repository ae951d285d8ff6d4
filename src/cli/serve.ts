import { Command } from "commander";
import { startApiServer } from "../api/server.ts";
import { loadConfig } from "../platform/config/config.ts";
import { createLogger } from "../platform/logger.ts";
import { openPlatform } from "../platform/platform.ts";
import { exitWithError } from "./errors.ts";
import { onShutdownSignal } from "./shutdown.ts";

export function serveCommand(): Command {
  return new Command("serve")
    .description(
      "Start the GraphQL API (HTTP and WebSocket on /graphql); embedded PostgreSQL when DATABASE_URL is unset",
    )
    .option("-p, --port <port>", "port to listen on (overrides PORT)")
    .action(async (opts: { port?: string }) => {
      let config: ReturnType<typeof loadConfig>;
      try {
        config = loadConfig(opts.port !== undefined ? { ...process.env, PORT: opts.port } : process.env);
      } catch (error) {
        exitWithError(error);
      }
      const logger = createLogger(config.LOG_LEVEL);
      let platform: Awaited<ReturnType<typeof openPlatform>> | undefined;
      try {
        platform = await openPlatform({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, logger });
        const server = await startApiServer({
          db: platform.db,
          databaseUrl: platform.database.url,
          logger,
          port: config.PORT,
          host: config.HOST,
        });
        logger.info({ url: server.url, ws: server.wsUrl }, "incubator API ready");
        const opened = platform;
        onShutdownSignal(logger, async () => {
          await server.close();
          await opened.close();
        });
      } catch (error) {
        await platform?.close().catch(() => {});
        if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
          exitWithError(new Error(`PORT=${config.PORT} is already in use; choose another with PORT=<n>`));
        }
        exitWithError(error);
      }
    });
}
