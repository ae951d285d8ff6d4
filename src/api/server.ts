/**
 * The HTTP server: GraphQL queries and mutations over HTTP (Apollo Server 5 on Express 5) and
 * subscriptions over WebSocket (graphql-ws), both on the same port and path, `/graphql`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { ApolloServer } from "@apollo/server";
import { ApolloServerPluginDrainHttpServer } from "@apollo/server/plugin/drainHttpServer";
import { expressMiddleware } from "@as-integrations/express5";
import express from "express";
import { specifiedRules, validate } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import type { ArtifactStore } from "../platform/artifacts/store.ts";
import type { Db } from "../platform/db/client.ts";
import { RunEventHub } from "../platform/events/event-hub.ts";
import type { Logger } from "../platform/logger.ts";
import { packageVersion } from "../platform/version.ts";
import type { JobLifecycle } from "../platform/worker/job-lifecycle.ts";
import { artifactUploadHandler } from "./artifact-upload.ts";
import { type AuthSetting, type Principal, principalOf, setUpAuth } from "./auth/index.ts";
import { type ApiContext, noopDispatcher, type RunDispatcher } from "./context.ts";
import { depthLimit, MAX_QUERY_DEPTH } from "./depth-limit.ts";
import { createLoaders } from "./loaders.ts";
import { buildSchema } from "./schema.ts";
import { shardRoute } from "./shard-route.ts";
import { requireWorkerToken } from "./worker-auth.ts";

export const GRAPHQL_PATH = "/graphql";
/** WebSocket close code at shutdown: "Service Restart", which graphql-ws clients retry. */
export const SERVICE_RESTART = 1012;
const SOCKET_CLOSE_GRACE_MS = 2_000;

export interface ApiServerOptions {
  db: Db;
  /** For the event hub's LISTEN connection. */
  databaseUrl: string;
  logger: Logger;
  port: number;
  host?: string;
  /** Hands new, cancelled and retried work to the scheduler; default: nothing is queued. */
  dispatcher?: RunDispatcher;
  /** Serves GET /artifacts/<sha256> (checksum verified) when given. */
  artifacts?: ArtifactStore;
  /** Serves GET /datasets/<id>/shards/<count>/<index> (packed shards, cached here) when given. */
  shardCacheDir?: string;
  /** Deepest query accepted (default 12). */
  maxQueryDepth?: number;
  /** Serves the worker API (claimJob, heartbeatJob, …) when given. */
  lifecycle?: JobLifecycle;
  /** `tokens` (default), `local` (loopback only, no token) or `auto` (local on loopback): auth/auth-mode.ts. */
  auth?: AuthSetting;
  /** Browser origins allowed besides the server's own (ALLOWED_ORIGINS). */
  allowedOrigins?: readonly string[];
  /** How often open subscriptions re-check their token (default 5 s). */
  authRecheckMs?: number;
}

export interface ApiServer {
  /** http://host:port/graphql; the WebSocket URL is the same with ws://. */
  url: string;
  wsUrl: string;
  httpServer: Server;
  /** `local` (loopback, no token needed) or `tokens`. */
  authMode: "local" | "tokens";
  /** Stop accepting, close WebSockets, drain in-flight requests. */
  close(): Promise<void>;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { db, logger } = options;
  const auth = await setUpAuth({
    db,
    logger,
    host: options.host ?? "0.0.0.0",
    setting: options.auth ?? "tokens",
    ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}),
    ...(options.authRecheckMs ? { recheckMs: options.authRecheckMs } : {}),
  });
  const schema = auth.protect(buildSchema());
  const startedAt = new Date();
  const version = packageVersion();
  const events = new RunEventHub({ db, databaseUrl: options.databaseUrl, logger });
  await events.start();
  const dispatcher = options.dispatcher ?? noopDispatcher;
  // A fresh context — and so fresh DataLoaders — per HTTP request and per subscription operation.
  const context = (authorization: unknown, principal: Principal): ApiContext => {
    const scoped = auth.forPrincipal(principal);
    return {
      ...scoped,
      ...(typeof authorization === "string" ? { authorization } : {}),
      ...(options.lifecycle ? { lifecycle: options.lifecycle } : {}),
      ...(options.artifacts ? { artifacts: options.artifacts } : {}),
      events,
      logger,
      startedAt,
      version,
      dispatcher,
      loaders: createLoaders(scoped.db),
    };
  };
  const validationRules = [depthLimit(options.maxQueryDepth ?? MAX_QUERY_DEPTH)];

  const app = express();
  const httpServer = createServer(app);
  const wsServer = new WebSocketServer({
    server: httpServer,
    path: GRAPHQL_PATH,
    verifyClient: auth.verifyClient,
  });
  const wsCleanup = useServer(
    {
      schema,
      onConnect: auth.onConnect,
      context: (ctx) =>
        context(
          ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization,
          auth.connectionPrincipal(ctx),
        ),
      validate: (schema, document) => validate(schema, document, [...specifiedRules, ...validationRules]),
      onError: (_ctx, _id, _payload, errors) => logger.warn({ errors }, "subscription error"),
    },
    wsServer,
  );

  /**
   * Shutdown: sockets first, with a close code graphql-ws clients retry on (1012 Service
   * Restart), so a client resubscribes — here or on another replica — with its last `afterSeq`.
   * Closing the event hub first ended every `runEvents` stream with `complete`, which a client
   * takes for the end of the run. A client that does not answer the close is cut off after
   * `SOCKET_CLOSE_GRACE_MS` (1006, retried too).
   */
  const closeSubscriptions = async () => {
    for (const socket of wsServer.clients)
      socket.close(SERVICE_RESTART, "server restarting; resubscribe with afterSeq");
    const cutOff = setTimeout(() => {
      for (const socket of wsServer.clients) socket.terminate();
    }, SOCKET_CLOSE_GRACE_MS);
    try {
      await wsCleanup.dispose(); // stops accepting sockets; resolves once every one is closed
    } finally {
      clearTimeout(cutOff);
    }
    await events.close();
  };

  const apollo = new ApolloServer<ApiContext>({
    schema,
    validationRules,
    includeStacktraceInErrorResponses: false,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      {
        async serverWillStart() {
          return {
            async drainServer() {
              await closeSubscriptions();
            },
          };
        },
      },
    ],
    logger: {
      debug: (m) => logger.debug(m),
      info: (m) => logger.info(m),
      warn: (m) => logger.warn(m),
      error: (m) => logger.error(m),
    },
  });
  await apollo.start();

  app.use(auth.guard);
  app.use(
    GRAPHQL_PATH,
    express.json({ limit: "1mb" }),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => context(req.headers.authorization, principalOf(res)),
    }),
  );
  const store = options.artifacts;
  if (store) {
    app.get("/artifacts/:sha256", async (req, res) => {
      const sha256 = String(req.params.sha256);
      if (!/^[0-9a-f]{64}$/.test(sha256) || !(await store.has(sha256))) {
        res.status(404).json({ error: `no artifact ${sha256}` });
        return;
      }
      try {
        res.download(await store.getFile(sha256), sha256);
      } catch (error) {
        logger.error({ err: error, sha256 }, "artifact download failed");
        res.status(500).json({ error: (error as Error).message });
      }
    });
  }
  // Shards hold training data: like uploads, they are for workers with a token only.
  if (options.shardCacheDir) {
    app.use(shardRoute({ db, logger, cacheDir: options.shardCacheDir, authorize: requireWorkerToken(db) }));
  }
  if (store) app.put("/artifacts/:sha256", requireWorkerToken(db), artifactUploadHandler(store, logger));
  app.get("/healthz", (_req, res) => {
    res.json({ ok: true });
  });
  auth.checkRoutes(app);

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(options.port, options.host ?? "0.0.0.0", () => {
      httpServer.off("error", reject);
      resolve();
    });
  });
  const { port } = httpServer.address() as AddressInfo;
  const host = options.host && options.host !== "0.0.0.0" ? options.host : "localhost";
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}${GRAPHQL_PATH}`,
    wsUrl: `ws://${host}:${port}${GRAPHQL_PATH}`,
    httpServer,
    authMode: auth.mode,
    close: () => {
      closing ??= apollo.stop();
      return closing;
    },
  };
}
