/** What every resolver receives, per HTTP request or per WebSocket subscription. */
import type { Db } from "../platform/db/client.ts";
import type { Logger } from "../platform/logger.ts";

export interface ApiContext {
  db: Db;
  logger: Logger;
  startedAt: Date;
  version: string;
}
