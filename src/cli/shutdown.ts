import type { Logger } from "../platform/logger.ts";

/**
 * Graceful shutdown on SIGINT/SIGTERM: run `stop` once (close sockets, drain, stop the embedded
 * database), then exit. Open subscriptions end with WebSocket close code 1012 (api/server.ts),
 * never `complete`: clients reconnect and resume with `afterSeq`. A second signal forces the exit — but not one that arrives within a
 * second of the first: Ctrl-C under `npm start` reaches us twice (from the terminal's process
 * group and forwarded by npm).
 */
const REPEAT_WINDOW_MS = 1_000;

export function onShutdownSignal(logger: Logger, stop: () => Promise<void>): void {
  let stoppingSince: number | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < REPEAT_WINDOW_MS) return;
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(130);
    }
    stoppingSince = Date.now();
    logger.info({ signal }, "shutting down");
    stop().then(
      () => process.exit(0),
      (error) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
}
