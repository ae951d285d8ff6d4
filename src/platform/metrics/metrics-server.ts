/**
 * `incubator worker --metrics-port N`: this process's own metrics over plain HTTP, for
 * Prometheus to scrape beside the API. A database worker applies its jobs' claims and ends
 * itself, so their wait and run times (job-timings.ts) are observed here, not in the API; the
 * database figures stay the API's. No token: it listens on loopback unless told otherwise, and
 * shows only timings and process figures (docs/metrics.md).
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../logger.ts";
import { enableProcessMetrics, registry } from "./metrics.ts";

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(o: {
  host: string;
  port: number;
  logger: Logger;
}): Promise<MetricsServer> {
  enableProcessMetrics();
  const server = createServer((req, res) => {
    const json = (status: number, code: string, error: string) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error, code }));
    if (new URL(req.url ?? "/", "http://x").pathname !== "/metrics")
      return json(404, "NOT_FOUND", "this port serves GET /metrics only");
    if (req.method !== "GET" && req.method !== "HEAD")
      return json(405, "METHOD_NOT_ALLOWED", "/metrics takes GET");
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (error: unknown) => {
        o.logger.error({ err: error }, "metrics scrape failed");
        json(500, "INTERNAL_SERVER_ERROR", "metrics could not be rendered");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  const url = `http://${host}:${port}/metrics`;
  o.logger.info({ url }, "metrics listening");
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // Prometheus keeps its connection alive between scrapes
      }),
  };
}
