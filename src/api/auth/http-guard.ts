/**
 * The HTTP side of the policy table: one middleware, mounted before every route, that
 * - refuses cross-site requests: a request with an `Origin` that is neither this server nor one
 *   of the configured origins is refused unless it carries a token (browsers attach none by
 *   themselves, so a web page cannot borrow an operator's local mode); in local mode the `Host`
 *   must be a loopback name too (DNS rebinding);
 * - resolves the caller (principal.ts) once, for the route and for GraphQL's context;
 * - takes one request from the caller's rate-limit bucket (../rate-limit.ts): over it, 429;
 * - applies the route's entry in ROUTE_POLICIES, then its resource check (artifact, shard).
 * `routeGaps` lists registered routes that have no policy; the server refuses to start on any.
 */
import type { Express, NextFunction, Request, RequestHandler, Response } from "express";
import type { Db } from "../../platform/db/client.ts";
import { sendError } from "../errors.ts";
import { idFromGlobalIdOrUuid } from "../global-id.ts";
import { callerKey, RATE_LIMITED, type RateLimiter } from "../rate-limit.ts";
import { decide, ROUTE_POLICIES, type RoutePolicy } from "./policy.ts";
import { type AuthMode, authenticate, type Principal, projectScope, type Refusal } from "./principal.ts";
import { scopedDb } from "./scope.ts";

export interface GuardOptions {
  db: Db;
  mode: AuthMode;
  /** Origins (scheme://host[:port]) allowed besides the server's own. */
  allowedOrigins: readonly string[];
  /** Per-caller request rate; absent: none. */
  rateLimiter?: RateLimiter;
}

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;

/** Why a request (HTTP or WebSocket upgrade) from this origin and host is refused, or null. */
export function originProblem(
  headers: { origin?: string | undefined; host?: string | undefined; authorization?: string | undefined },
  o: Pick<GuardOptions, "mode" | "allowedOrigins">,
): string | null {
  if (o.mode === "local" && headers.host && !LOOPBACK_HOST.test(headers.host)) {
    return `local mode answers only requests addressed to a loopback name (localhost, 127.0.0.1), not "${headers.host}"`;
  }
  const origin = headers.origin;
  if (!origin || headers.authorization) return null;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return `origin "${origin}" is not allowed`;
  }
  if (host === headers.host || o.allowedOrigins.includes(origin)) return null;
  return `origin "${origin}" is not allowed: only this server's own pages and ALLOWED_ORIGINS may call it without a token`;
}

/** The caller of a request, as the guard resolved it (GraphQL's context reuses it). */
export const principalOf = (res: Response): Principal =>
  (res.locals.principal as Principal | undefined) ?? { kind: "none" };

const compiled = Object.entries(ROUTE_POLICIES).map(([key, policy]) => {
  const [method, path] = key.split(" ") as [string, string];
  const pattern = new RegExp(`^${path.replace(/:[A-Za-z0-9_]+/g, "([^/]+)")}/?$`);
  const names = [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  return { key, method, pattern, names, policy };
});

function matchRoute(req: Request) {
  for (const route of compiled) {
    if (route.method !== req.method && !(route.method === "GET" && req.method === "HEAD")) continue;
    const match = route.pattern.exec(req.path);
    if (match) {
      const params = Object.fromEntries(route.names.map((n, i) => [n, decodeURIComponent(match[i + 1]!)]));
      return { ...route, params };
    }
  }
  return null;
}

const send = (res: Response, status: number, code: string, message: string) =>
  res.status(status).json({ error: message, code });

export function guardRoutes(o: GuardOptions): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const problem = originProblem(
        { origin: req.headers.origin, host: req.headers.host, authorization: req.headers.authorization },
        o,
      );
      if (problem) return void send(res, 403, "FORBIDDEN", problem);
      const principal = await authenticate(o.db, req.headers.authorization, o.mode);
      res.locals.principal = principal;
      const taken = o.rateLimiter?.take(callerKey(principal, req.socket.remoteAddress));
      if (taken && !taken.ok) {
        res.setHeader("retry-after", String(taken.retryAfterSeconds));
        return void sendError(req, res, 429, RATE_LIMITED, taken.message);
      }
      const route = matchRoute(req);
      if (!route) return next(); // no such route: Express answers 404
      if (route.key.endsWith(" /graphql")) return next(); // every field has its own policy
      const refusal = decide(route.policy, principal, route.key);
      if (refusal)
        return void send(res, refusal.code === "FORBIDDEN" ? 403 : 401, refusal.code, refusal.message);
      const denied = await resourceRefusal(o.db, route.policy, principal, route.params, req.query);
      if (denied) return void send(res, denied.status, denied.code, denied.message);
      next();
    } catch (error) {
      next(error);
    }
  };
}

/** Running jobs a worker token's workers hold (API workers are `<token name>/<worker id>`). */
function heldJobs(db: Db, tokenName: string) {
  return db.job.findMany({
    where: { state: "RUNNING", workerId: { startsWith: `${tokenName}/` } },
    select: { runId: true, spec: true },
  });
}

async function resourceRefusal(
  db: Db,
  policy: RoutePolicy,
  principal: Principal,
  params: Record<string, string>,
  query: Record<string, unknown>,
): Promise<(Refusal & { status: number }) | { status: 404; code: "NOT_FOUND"; message: string } | null> {
  if (policy.resource === "artifact") {
    const sha256 = params.sha256 ?? "";
    if (principal.kind === "worker") {
      for (const job of await heldJobs(db, principal.token.name)) {
        if (JSON.stringify(job.spec).includes(sha256)) return null;
        if (await db.artifact.findFirst({ where: { runId: job.runId, sha256 }, select: { id: true } }))
          return null;
      }
      return {
        status: 403,
        code: "FORBIDDEN",
        message: "a worker token downloads only artifacts of jobs its workers hold",
      };
    }
    const visible = await scopedDb(db, projectScope(principal)).artifact.findFirst({
      where: { sha256 },
      select: { id: true },
    });
    return visible ? null : { status: 404, code: "NOT_FOUND", message: `no artifact ${sha256}` };
  }
  if (policy.resource === "shard") {
    if (principal.kind !== "worker")
      return { status: 403, code: "FORBIDDEN", message: "shards are for workers" };
    const datasetId = idFromGlobalIdOrUuid("Dataset", params.dataset ?? "");
    const wanted = {
      count: Number(params.count),
      index: Number(params.index),
      seed: Number(query.seed ?? 0),
    };
    for (const job of await heldJobs(db, principal.token.name)) {
      const spec = job.spec as {
        datasetId?: string;
        dataset?: { shard?: { count: number; index: number; seed: number } };
      };
      if (!datasetId || spec.datasetId !== datasetId) continue;
      // A spec without a shard reads the whole split: shard 0 of 1 (src/data/shard-remote.ts).
      const held = spec.dataset?.shard ?? { count: 1, index: 0, seed: 0 };
      const same = (x: { count: number; index: number; seed: number }) =>
        x.count === wanted.count && x.index === wanted.index && x.seed === wanted.seed;
      // Its evaluation reads the whole test split, whatever shard it trains on.
      if (same(held) || (query.split === "test" && same({ count: 1, index: 0, seed: 0 }))) return null;
    }
    return {
      status: 403,
      code: "FORBIDDEN",
      message: "a worker token gets only the shards of the running jobs its workers hold",
    };
  }
  return null;
}

/** Every registered route: `METHOD /path`, or `* /path` for middleware mounted on a path. */
export function listRoutes(app: Express): string[] {
  const routes: string[] = [];
  const walk = (stack: RouterLayer[], prefix: string) => {
    for (const layer of stack) {
      const raw = typeof layer.rawPath === "string" ? layer.rawPath : "/";
      const path = prefix + (raw === "/" ? "" : raw);
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods))
          routes.push(`${method === "_all" ? "*" : method.toUpperCase()} ${prefix}${layer.route.path}`);
      } else if (layer.handle && Array.isArray((layer.handle as { stack?: unknown }).stack)) {
        walk((layer.handle as { stack: RouterLayer[] }).stack, path);
      } else if (path) {
        routes.push(`* ${path}`);
      }
    }
  };
  walk((app as unknown as { router: { stack: RouterLayer[] } }).router.stack, "");
  return [...new Set(routes)];
}

/** Registered routes without a policy (`* /path`: no policy for any method of that path). */
export function routeGaps(app: Express): string[] {
  const keys = Object.keys(ROUTE_POLICIES);
  return listRoutes(app).filter((route) =>
    route.startsWith("* ") ? !keys.some((k) => k.endsWith(route.slice(1))) : !keys.includes(route),
  );
}

interface RouterLayer {
  rawPath?: unknown;
  route?: { path: string; methods: Record<string, boolean> };
  handle?: unknown;
}
