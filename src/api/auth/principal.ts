/**
 * Who is calling: resolved once per HTTP request and once per WebSocket connection from the
 * bearer token (`Authorization: Bearer …` or the graphql-ws connection parameter
 * `authorization`). API tokens (`inc_at_…`) and worker tokens (`inc_wt_…`) are told apart by
 * their prefix. Without a token the caller is `local` in loopback local mode, else nobody.
 */
import type { WorkerToken } from "../../generated/prisma/client.ts";
import {
  API_TOKEN_PREFIX,
  type ApiTokenWithProjects,
  checkApiToken,
} from "../../platform/auth/api-tokens.ts";
import { DEFAULT_PROJECT_ID } from "../../platform/auth/projects.ts";
import { checkWorkerToken, WORKER_TOKEN_PREFIX } from "../../platform/auth/worker-tokens.ts";
import type { Db } from "../../platform/db/client.ts";

/** `tokens`: every call needs a token; `local`: loopback only, no token needed (auth-mode.ts). */
export type AuthMode = "tokens" | "local";

export type AuthErrorCode = "UNAUTHENTICATED" | "FORBIDDEN";

export interface Refusal {
  code: AuthErrorCode;
  message: string;
}

export type Principal =
  /** Loopback local mode without a token: what a single user on their own machine may do (all). */
  | { kind: "local" }
  | { kind: "api"; token: ApiTokenWithProjects }
  | { kind: "worker"; token: WorkerToken }
  /** No token (refusal absent) or one that does not work (refusal says why). */
  | { kind: "none"; refusal?: Refusal };

export const NO_TOKEN_MESSAGE =
  "this API needs a token: send `Authorization: Bearer inc_at_…` (an admin creates one with `incubator token create`)";

export const bearerSecret = (authorization: unknown) =>
  typeof authorization === "string" ? authorization.replace(/^Bearer\s+/i, "").trim() : "";

export async function authenticate(db: Db, authorization: unknown, mode: AuthMode): Promise<Principal> {
  const secret = bearerSecret(authorization);
  if (!secret) return mode === "local" ? { kind: "local" } : { kind: "none" };
  if (secret.startsWith(WORKER_TOKEN_PREFIX)) {
    const check = await checkWorkerToken(db, secret);
    return check.ok ? { kind: "worker", token: check.token } : { kind: "none", refusal: check };
  }
  if (secret.startsWith(API_TOKEN_PREFIX)) {
    const check = await checkApiToken(db, secret);
    return check.ok ? { kind: "api", token: check.token } : { kind: "none", refusal: check };
  }
  return {
    kind: "none",
    refusal: {
      code: "UNAUTHENTICATED",
      message: `the token is not valid (API tokens start with ${API_TOKEN_PREFIX}, worker tokens with ${WORKER_TOKEN_PREFIX})`,
    },
  };
}

/** Re-check a principal's token now (for long-lived subscriptions): a refusal once it stopped working. */
export async function recheck(db: Db, principal: Principal): Promise<Refusal | null> {
  if (principal.kind === "api") {
    const token = await db.apiToken.findUnique({ where: { id: principal.token.id } });
    if (!token || token.revokedAt)
      return { code: "FORBIDDEN", message: `API token "${principal.token.name}" was revoked` };
    if (token.expiresAt && token.expiresAt <= new Date())
      return { code: "UNAUTHENTICATED", message: `API token "${principal.token.name}" expired` };
  }
  if (principal.kind === "worker") {
    const token = await db.workerToken.findUnique({ where: { id: principal.token.id } });
    if (!token || token.revokedAt)
      return { code: "FORBIDDEN", message: `worker token "${principal.token.name}" was revoked` };
  }
  return null;
}

/** The projects a principal reaches: null = all of them. */
export function projectScope(principal: Principal): string[] | null {
  if (principal.kind === "api" && principal.token.projects.length > 0)
    return principal.token.projects.map((p) => p.id).sort();
  if (principal.kind === "none") return [];
  return null;
}

/**
 * The project a create goes to when the caller names none: the one project a token is limited
 * to; "default" for local mode and for tokens that reach every project (as before projects
 * existed). null when the token is limited to several: it must say which (target-project.ts).
 */
export function defaultProject(principal: Principal): string | null {
  if (principal.kind === "api" && principal.token.projects.length > 0)
    return principal.token.projects.length === 1 ? principal.token.projects[0]!.id : null;
  return DEFAULT_PROJECT_ID;
}

/** For logs: who did it. */
export function describePrincipal(principal: Principal): string {
  switch (principal.kind) {
    case "local":
      return "local";
    case "api":
      return `token:${principal.token.name}`;
    case "worker":
      return `worker-token:${principal.token.name}`;
    default:
      return "anonymous";
  }
}
