/** What every resolver receives, per HTTP request or per WebSocket subscription. */
import type { Db } from "../platform/db/client.ts";
import type { RunEventHub } from "../platform/events/event-hub.ts";
import type { Logger } from "../platform/logger.ts";

export interface ApiContext {
  db: Db;
  /** Fans run events out to subscriptions (one LISTEN connection per process). */
  events: RunEventHub;
  logger: Logger;
  startedAt: Date;
  version: string;
}
