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
import type { GraphQLError } from "graphql";
import { WebSocketServer } from "ws";
import type { ArtifactStore } from "../platform/artifacts/store.ts";
import { API_TOKEN_REVOKED_CHANNEL } from "../platform/auth/api-tokens.ts";
import type { Db } from "../platform/db/client.ts";
import { type HubStats, RunEventHub } from "../platform/events/event-hub.ts";
import {
  DEFAULT_ARTIFACT_QUOTA_BYTES,
  DEFAULT_REQUEST_LIMITS,
  type RequestLimits,
} from "../platform/limits.ts";
import type { Logger } from "../platform/logger.ts";
import { packageVersion } from "../platform/version.ts";
import type { JobLifecycle } from "../platform/worker/job-lifecycle.ts";
import { artifactUploadHandler, storeFailure } from "./artifact-upload.ts";
import { type AuthSetting, type Principal, principalOf, setUpAuth } from "./auth/index.ts";
import { type ApiContext, noopDispatcher, type RunDispatcher } from "./context.ts";
import { DASHBOARD_PATH, DEFAULT_DASHBOARD_DIR, mountDashboard } from "./dashboard.ts";
import {
  clientError,
  errorHandler,
  jsonErrorBodies,
  maskInternalErrors,
  methodNotAllowed,
  newRequestId,
  notFound,
  requestIdMiddleware,
  requestIdOf,
  sendError,
} from "./errors.ts";
import { createLoaders } from "./loaders.ts";
import { metricsPlugin } from "./metrics-plugin.ts";
import { METRICS_PATH, metricsRoute } from "./metrics-route.ts";
import {
  cachedOperationCheck,
  isTokenLimit,
  limitError,
  limitRules,
  parseFailure,
} from "./operation-limits.ts";
import { ConnectionCounter, callerKey, RateLimiter, rateLimitError } from "./rate-limit.ts";
import { createRunEventFanout, type FanoutStats } from "./run-event-fanout.ts";
import { buildSchema } from "./schema.ts";
import { shardRoute } from "./shard-route.ts";
import { requireWorkerToken } from "./worker-auth.ts";
import { type TransportStats, useGraphqlWs } from "./ws-transport.ts";

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
  /** Request limits (platform/limits.ts); unset ones keep their defaults. */
  limits?: Partial<RequestLimits>;
  /**
   * Folders inside which registerDataset / registerMetaModel / importMetaModel may read files
   * (realpath, symlinks followed). Default: none — every server-side path is refused.
   */
  dataRoots?: readonly string[];
  /** Answer introspection queries (default true). */
  introspection?: boolean;
  /** Serves the worker API (claimJob, heartbeatJob, …) when given. */
  lifecycle?: JobLifecycle;
  /** `tokens` (default), `local` (loopback only, no token) or `auto` (local on loopback): auth/auth-mode.ts. */
  auth?: AuthSetting;
  /** Browser origins allowed besides the server's own (ALLOWED_ORIGINS). */
  allowedOrigins?: readonly string[];
  /** How often open subscriptions re-check their token (default 5 s). */
  authRecheckMs?: number;
  /** The built dashboard served at /ui (default ui/dist of this package). */
  dashboardDir?: string;
  /** Artifact bytes of a project without its own quota (default DEFAULT_ARTIFACT_QUOTA_BYTES). */
  artifactQuotaBytes?: number;
}

export interface ApiServer {
  /** http://host:port/graphql; the WebSocket URL is the same with ws://. */
  url: string;
  wsUrl: string;
  /** The web dashboard: http://host:port/ui/ */
  dashboardUrl: string;
  httpServer: Server;
  /** `local` (loopback, no token needed) or `tokens`. */
  authMode: "local" | "tokens";
  /** What run-event delivery costs in this process (`incubator bench events` prints these). */
  eventStats(): { hub: HubStats; fanout: FanoutStats; transport: TransportStats; subscribers: number };
  /** Stop accepting, close WebSockets, drain in-flight requests. */
  close(): Promise<void>;
}

export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const { db, logger } = options;
  const limits: RequestLimits = { ...DEFAULT_REQUEST_LIMITS, ...options.limits };
  // Per caller, in this process only (rate-limit.ts): HTTP requests and WebSocket operations share a bucket.
  const rateLimiter = new RateLimiter(limits.rateLimitPerSecond, limits.rateLimitBurst);
  const auth = await setUpAuth({
    db,
    logger,
    host: options.host ?? "0.0.0.0",
    setting: options.auth ?? "tokens",
    ...(options.allowedOrigins ? { allowedOrigins: options.allowedOrigins } : {}),
    ...(options.authRecheckMs ? { recheckMs: options.authRecheckMs } : {}),
    rateLimiter,
    wsConnections: new ConnectionCounter(limits.maxWsConnectionsPerToken),
  });
  const schema = auth.protect(buildSchema());
  const startedAt = new Date();
  const version = packageVersion();
  const events = new RunEventHub({
    db,
    databaseUrl: options.databaseUrl,
    logger,
    maxQueuedEvents: limits.maxQueuedEventsPerSubscription,
  });
  const fanout = createRunEventFanout({ maxQueuedEvents: limits.maxQueuedEventsPerSubscription });
  await events.start();
  // Revocations close the token's WebSocket connections at once (auth/revocations.ts).
  await events.listen(API_TOKEN_REVOKED_CHANNEL, (tokenId) => {
    const closed = auth.tokenRevoked(tokenId);
    if (closed > 0) logger.info({ tokenId, closed }, "API token revoked: closed its WebSocket connections");
  });
  const dispatcher = options.dispatcher ?? noopDispatcher;
  const dataRoots = options.dataRoots ?? [];
  const artifactQuotaBytes = options.artifactQuotaBytes ?? DEFAULT_ARTIFACT_QUOTA_BYTES;
  const introspection = options.introspection ?? true;
  // A fresh context — and so fresh DataLoaders — per HTTP request and per WebSocket operation,
  // with the database client limited to the caller's projects (auth/scope.ts).
  const context = (requestId: string, authorization: unknown, principal: Principal): ApiContext => {
    const scoped = auth.forPrincipal(principal);
    return {
      ...scoped,
      requestId,
      dataRoots,
      maxParameters: limits.maxParameters,
      artifactQuotaBytes,
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
  const validationRules = limitRules(limits, { introspection });
  const checkOperation = cachedOperationCheck(schema, limits, validationRules);

  const app = express();
  app.disable("x-powered-by");
  const httpServer = createServer(app);
  httpServer.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  httpServer.requestTimeout = limits.requestTimeoutMs;
  httpServer.keepAliveTimeout = limits.keepAliveTimeoutMs;
  const wsServer = new WebSocketServer({
    server: httpServer,
    path: GRAPHQL_PATH,
    maxPayload: limits.maxWsPayloadBytes,
    verifyClient: auth.verifyClient,
  });
  // Each WebSocket operation gets its own request id; errors are masked like Apollo's (errors.ts).
  const wsRequestIds = new WeakMap<object, Map<string, string>>();
  const wsRequestId = (ctx: object, id: string) => {
    const ids = wsRequestIds.get(ctx) ?? new Map<string, string>();
    wsRequestIds.set(ctx, ids);
    const requestId = ids.get(id) ?? newRequestId();
    ids.set(id, requestId);
    return requestId;
  };
  const wsCleanup = useGraphqlWs(
    {
      schema,
      subscribe: fanout.subscribe,
      onConnect: auth.onConnect,
      onSubscribe: (ctx, id, payload) => {
        const remote = (ctx.extra as { request: { socket: { remoteAddress?: string } } }).request.socket;
        const taken = rateLimiter.take(callerKey(auth.connectionPrincipal(ctx), remote.remoteAddress));
        if (!taken.ok) return [rateLimitError(taken)];
        const running = Object.keys(ctx.subscriptions).length; // this one included
        if (running > limits.maxSubscriptionsPerConnection) {
          return [
            limitError(
              `this connection already runs ${running - 1} operations; the limit is ` +
                `${limits.maxSubscriptionsPerConnection}. Complete one first, or open another connection`,
              "subscriptions",
              { maxSubscriptions: limits.maxSubscriptionsPerConnection },
            ),
          ];
        }
        const checked = checkOperation(payload.query);
        if (Array.isArray(checked)) return checked;
        const authorization = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        return {
          schema,
          document: checked,
          operationName: payload.operationName ?? null,
          variableValues: payload.variables ?? null,
          contextValue: context(wsRequestId(ctx, id), authorization, auth.connectionPrincipal(ctx)),
        };
      },
      onNext: (ctx, id, _payload, _args, result) =>
        result.errors
          ? {
              ...result,
              errors: result.errors.map((e) => clientError(e as GraphQLError, wsRequestId(ctx, id), logger)),
            }
          : undefined,
      onError: (ctx, id, _payload, errors) => errors.map((e) => clientError(e, wsRequestId(ctx, id), logger)),
      onComplete: (ctx, id) => {
        wsRequestIds.get(ctx)?.delete(id);
      },
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
    // Our shutdown (cli/shutdown.ts) owns SIGINT/SIGTERM. Apollo's own handlers, which it installs
    // unless NODE_ENV=test, raced it and left `serve` running after SIGTERM (so in containers,
    // where NODE_ENV=production, every stop ended in SIGKILL).
    stopOnTerminationSignals: false,
    validationRules,
    introspection,
    parseOptions: { maxTokens: limits.maxTokens },
    includeStacktraceInErrorResponses: false,
    formatError: (formatted, error) => {
      // The token limit stops the parser: report it as the validation limit it is.
      const original = (error as { originalError?: unknown })?.originalError ?? error;
      if (formatted.extensions?.code === "GRAPHQL_PARSE_FAILED" && isTokenLimit(formatted.message)) {
        return parseFailure(original as GraphQLError, limits.maxTokens).toJSON();
      }
      return formatted;
    },
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      maskInternalErrors(logger),
      metricsPlugin(),
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

  app.use(requestIdMiddleware());
  app.use(auth.guard);
  app.get("/healthz", (_req, res) => {
    res.json({ ok: true });
  });
  app.get(
    METRICS_PATH,
    metricsRoute({
      db,
      logger,
      live: () => ({ subscriptions: events.subscriberCount, webSockets: wsServer.clients.size }),
    }),
  );
  mountDashboard(app, { dir: options.dashboardDir ?? DEFAULT_DASHBOARD_DIR, logger });
  app.use(
    GRAPHQL_PATH,
    (req, res, next) => {
      if (req.method !== "GET" && req.method !== "POST") {
        methodNotAllowed(["GET", "POST"])(req, res, next);
        return;
      }
      if (req.method === "POST" && !req.is("application/json")) {
        sendError(req, res, 415, "UNSUPPORTED_MEDIA_TYPE", "send the operation as application/json");
        return;
      }
      next();
    },
    express.json({ limit: limits.maxBodyBytes }),
    (req, _res, next) => {
      // Apollo wants a body even on GET (express.json leaves it unset when there is none).
      if (req.body === undefined) req.body = {};
      next();
    },
    jsonErrorBodies(),
    expressMiddleware(apollo, {
      context: async ({ req, res }) => context(requestIdOf(req), req.headers.authorization, principalOf(res)),
    }),
  );
  const store = options.artifacts;
  if (store) {
    app.get("/artifacts/:sha256", async (req, res) => {
      const sha256 = String(req.params.sha256);
      if (!/^[0-9a-f]{64}$/.test(sha256) || !(await store.has(sha256))) {
        sendError(
          req,
          res,
          404,
          "NOT_FOUND",
          "no such artifact (the address is its sha256: 64 lowercase hex digits)",
        );
        return;
      }
      let path: string;
      try {
        path = await store.getFile(sha256);
      } catch (error) {
        logger.error({ err: error, sha256, requestId: requestIdOf(req) }, "artifact could not be read");
        const [status, code, message] = storeFailure(error);
        sendError(req, res, status, code, message);
        return;
      }
      res.download(path, sha256, (error) => {
        if (!error) return;
        logger.error({ err: error, sha256, requestId: requestIdOf(req) }, "artifact download failed");
        sendError(req, res, 500, "INTERNAL_SERVER_ERROR", "the artifact could not be read");
      });
    });
  }
  // Shards hold training data: like uploads, they are for workers with a token only.
  if (options.shardCacheDir) {
    app.use(shardRoute({ db, logger, cacheDir: options.shardCacheDir, authorize: requireWorkerToken(db) }));
  }
  if (store) {
    app.put(
      "/artifacts/:sha256",
      // Who may upload is auth.guard's (auth/policy.ts): worker tokens, and operators' API tokens.
      artifactUploadHandler({
        store,
        db,
        logger,
        maxBytes: limits.maxUploadBytes,
        quotaBytes: artifactQuotaBytes,
      }),
    );
  }
  auth.checkRoutes(app); // every route has a policy (auth/policy.ts), or the server does not start
  // Refusals only, as middleware rather than routes (routes are what the policy table lists):
  // a method a known path does not take is 405 with Allow, anything else 404.
  app.use((req, res, next) => {
    if (req.path === "/healthz" || req.path === METRICS_PATH) methodNotAllowed(["GET"])(req, res, next);
    else if (store && /^\/artifacts\/[^/]+$/.test(req.path)) methodNotAllowed(["GET", "PUT"])(req, res, next);
    else next();
  });
  app.use(notFound());
  app.use(errorHandler(logger, limits));

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
    dashboardUrl: `http://${host}:${port}${DASHBOARD_PATH}/`,
    httpServer,
    authMode: auth.mode,
    eventStats: () => ({
      hub: events.stats,
      fanout: fanout.stats,
      transport: wsCleanup.stats,
      subscribers: events.subscriberCount,
    }),
    close: () => {
      closing ??= apollo.stop();
      return closing;
    },
  };
}
