/**
 * Authentication and authorization for the API server, as one piece the server plugs in:
 * the mode (auth-mode.ts), the policy-wrapped schema, the HTTP guard, the graphql-ws hooks
 * (Origin check on upgrade, the token in `connection_init`) and the per-request scoped client.
 */
import type { Express, RequestHandler } from "express";
import type { GraphQLSchema } from "graphql";
import type { Context as WsContext } from "graphql-ws";
import type { ServerOptions as WsServerOptions } from "ws";
import type { Db } from "../../platform/db/client.ts";
import type { Logger } from "../../platform/logger.ts";
import {
  type ConnectionCounter,
  callerKey,
  type RateLimiter,
  WS_TOO_MANY_CONNECTIONS,
} from "../rate-limit.ts";
import { applyFieldPolicies } from "./apply-policies.ts";
import { type AuthSetting, resolveAuthMode } from "./auth-mode.ts";
import { guardRoutes, originProblem, routeGaps } from "./http-guard.ts";
import { type AuthMode, authenticate, type Principal, projectScope } from "./principal.ts";
import { type ClosableSocket, TokenConnections, WS_CLOSE } from "./revocations.ts";
import { scopedDb } from "./scope.ts";

export type { AuthSetting } from "./auth-mode.ts";
export { principalOf } from "./http-guard.ts";
export type { Principal } from "./principal.ts";

export interface AuthOptions {
  db: Db;
  logger: Logger;
  /** The address the server listens on (local mode only on loopback). */
  host: string;
  /** `tokens` (the default for embedders and tests), `local`, or `auto` (local on loopback). */
  setting?: AuthSetting;
  allowedOrigins?: readonly string[];
  /** How often open subscriptions re-check their token. */
  recheckMs?: number;
  /** Per-caller request rate (HTTP requests here; graphql-ws operations in the server). */
  rateLimiter?: RateLimiter;
  /** Per-caller open WebSocket connections. */
  wsConnections?: ConnectionCounter;
}

export interface ApiAuth {
  mode: AuthMode;
  /** The schema with every root field wrapped by its policy; throws on a field without one. */
  protect(schema: GraphQLSchema): GraphQLSchema;
  /** Mount before every route. */
  guard: RequestHandler;
  /** Call after every route is mounted: throws on a route without a policy. */
  checkRoutes(app: Express): void;
  verifyClient: NonNullable<WsServerOptions["verifyClient"]>;
  onConnect(ctx: WsContext): Promise<boolean>;
  /** The principal graphql-ws's onConnect resolved for a connection. */
  connectionPrincipal(ctx: WsContext): Principal;
  /** Context fields for a request of `principal`: its scoped database client and itself. */
  forPrincipal(principal: Principal): { db: Db; principal: Principal };
  /** An API token was revoked (its NOTIFY): close its WebSocket connections now; how many. */
  tokenRevoked(tokenId: string): number;
}

/** graphql-ws's `extra` on the ws server: the socket and its upgrade request. */
interface WsExtra {
  socket: ClosableSocket;
  request: { socket: { remoteAddress?: string | undefined } };
}

export async function setUpAuth(o: AuthOptions): Promise<ApiAuth> {
  const mode = await resolveAuthMode({
    db: o.db,
    logger: o.logger,
    host: o.host,
    setting: o.setting ?? "tokens",
  });
  const allowedOrigins = o.allowedOrigins ?? [];
  const principals = new WeakMap<object, Principal>();
  const connections = new TokenConnections();
  return {
    mode,
    protect: (schema) =>
      applyFieldPolicies(schema, o.recheckMs === undefined ? {} : { recheckMs: o.recheckMs }),
    guard: guardRoutes({
      db: o.db,
      mode,
      allowedOrigins,
      ...(o.rateLimiter ? { rateLimiter: o.rateLimiter } : {}),
    }),
    checkRoutes(app) {
      const gaps = routeGaps(app);
      if (gaps.length)
        throw new Error(`authorization: no policy in src/api/auth/policy.ts for route(s) ${gaps.join(", ")}`);
    },
    verifyClient: (info, callback) => {
      const problem = originProblem(
        { origin: info.origin, host: info.req.headers.host, authorization: info.req.headers.authorization },
        { mode, allowedOrigins },
      );
      if (problem) callback(false, 403, problem);
      else callback(true);
    },
    async onConnect(ctx) {
      const params = ctx.connectionParams ?? {};
      const principal = await authenticate(o.db, params.authorization ?? params.Authorization, mode);
      const { socket, request } = ctx.extra as WsExtra;
      if (principal.kind === "none") {
        const refusal = principal.refusal ?? {
          code: "UNAUTHENTICATED" as const,
          message: "send connectionParams.authorization",
        };
        // A close reason is at most 123 bytes: the code and the start of the message.
        const reason = `${refusal.code}: ${refusal.message}`.slice(0, 120);
        socket.close(WS_CLOSE[refusal.code], reason);
        return false;
      }
      if (o.wsConnections) {
        const counter = o.wsConnections;
        const key = callerKey(principal, request.socket.remoteAddress);
        const over = counter.acquire(key);
        if (over) {
          socket.close(WS_TOO_MANY_CONNECTIONS, over.slice(0, 120));
          return false;
        }
        socket.once("close", () => counter.release(key));
      }
      if (principal.kind === "api") connections.add(principal.token.id, socket);
      principals.set(ctx, principal);
      return true;
    },
    connectionPrincipal: (ctx) => principals.get(ctx) ?? { kind: "none" },
    tokenRevoked: (tokenId) => connections.revoked(tokenId),
    forPrincipal: (principal) => ({
      db: scopedDb(o.db, projectScope(principal)),
      principal,
    }),
  };
}
