/**
 * The API server as the API tests start it: on the test file's database, loopback, a free port,
 * a silent logger, and tokens required (every test but the local-mode ones sends real tokens).
 */
import pino from "pino";
import { afterAll, beforeAll } from "vitest";
import { type ApiServer, type ApiServerOptions, startApiServer } from "../../src/api/server.ts";
import { mintToken } from "./auth.ts";
import type { TestDatabase } from "./database.ts";
import { useToken } from "./graphql.ts";

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

/**
 * One API server for a whole test file (started before its tests, closed after them), with a
 * viewer token as the default for its GraphQL requests. Read `url` and `wsUrl` inside tests.
 */
export function useViewerApiServer(t: TestDatabase): Pick<ApiServer, "url" | "wsUrl"> {
  let server: ApiServer | undefined;
  beforeAll(async () => {
    server = await startTestApiServer(t);
    useToken(server.url, await mintToken(t.db, "VIEWER"));
  });
  afterAll(async () => {
    await server?.close();
  });
  const started = () => {
    if (!server) throw new Error("the test API server starts in beforeAll: read it inside a test");
    return server;
  };
  return {
    get url() {
      return started().url;
    },
    get wsUrl() {
      return started().wsUrl;
    },
  };
}
