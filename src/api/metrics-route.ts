/**
 * `GET /metrics`: the Prometheus text format (platform/metrics/). Each scrape first reads the
 * database figures (runs, modules, queue, workers: one grouped query each) and this process's
 * live counts, then renders the registry. Who may scrape: auth/policy.ts.
 */
import type { Request, Response } from "express";
import type { Db } from "../platform/db/client.ts";
import type { Logger } from "../platform/logger.ts";
import { refreshDatabaseFigures } from "../platform/metrics/database-figures.ts";
import {
  enableProcessMetrics,
  registry,
  subscriptionsOpen,
  webSocketsOpen,
} from "../platform/metrics/metrics.ts";
import { requestIdOf, sendError } from "./errors.ts";

export const METRICS_PATH = "/metrics";

export interface MetricsRouteOptions {
  db: Db;
  logger: Logger;
  /** This process's open runEvents subscriptions and WebSocket connections. */
  live: () => { subscriptions: number; webSockets: number };
}

export function metricsRoute(o: MetricsRouteOptions) {
  enableProcessMetrics();
  return async (req: Request, res: Response) => {
    try {
      await refreshDatabaseFigures(o.db);
      const live = o.live();
      subscriptionsOpen.set(live.subscriptions);
      webSocketsOpen.set(live.webSockets);
      res.type(registry.contentType).send(await registry.metrics());
    } catch (error) {
      o.logger.error({ err: error, requestId: requestIdOf(req) }, "metrics scrape failed");
      sendError(req, res, 503, "UNAVAILABLE", "metrics are unavailable: the database did not answer");
    }
  };
}
