/**
 * The API server as the API tests start it: on the test file's database, loopback, a free port,
 * a silent logger, and tokens required (every test but the local-mode ones sends real tokens).
 */
import pino from "pino";
import { type ApiServer, type ApiServerOptions, startApiServer } from "../../src/api/server.ts";
import type { TestDatabase } from "./database.ts";

export function startTestApiServer(
  t: TestDatabase,
  options: Partial<ApiServerOptions> = {},
): Promise<ApiServer> {
  return startApiServer({
    db: t.db,
    databaseUrl: t.url,
    logger: pino({ level: "silent" }),
    port: 0,
    host: "127.0.0.1",
    auth: "tokens",
    ...options,
  });
}
