/**
 * API tokens: credentials for people and programs calling the API. A token is `inc_at_` + 32
 * random bytes (base64url); only its sha256 is stored (like worker tokens), so a leaked database
 * does not leak working tokens, and the secret is shown once, at creation. A token has a role
 * (VIEWER < OPERATOR < ADMIN), optionally an expiry, and the projects it reaches (none: all).
 */
import { randomBytes } from "node:crypto";
import type { ApiToken, Role } from "../../generated/prisma/client.ts";
import type { Db } from "../db/client.ts";
import { hashWorkerToken } from "./worker-tokens.ts";

export const API_TOKEN_PREFIX = "inc_at_";
export const ROLES = ["VIEWER", "OPERATOR", "ADMIN"] as const satisfies readonly Role[];
export const CREATE_ADMIN_TOKEN_HINT = "create one with `npx incubator token create --role admin`";

/** sha256 of a secret, the same digest worker tokens use. */
export const hashApiToken = hashWorkerToken;

/** Does `role` include everything `needed` may do? */
export const roleAtLeast = (role: Role, needed: Role) => ROLES.indexOf(role) >= ROLES.indexOf(needed);

export type ApiTokenWithProjects = ApiToken & { projects: { id: string; name: string }[] };

/** What is wrong with a token name (field, message), or null. */
export function apiTokenNameProblem(name: string): string | null {
  return /^[A-Za-z0-9_.@-]{1,64}$/.test(name)
    ? null
    : `name "${name}" must be 1–64 letters, digits, "_", ".", "@" or "-", e.g. ci-deploy`;
}

/** "30d", "12h", "45m", "3600s" → milliseconds; null when the text is not such a duration. */
export function parseDuration(text: string): number | null {
  const match = /^(\d+)\s*([smhdw])$/.exec(text.trim());
  if (!match) return null;
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[match[2] as "s"];
  const ms = Number(match[1]) * unit;
  return ms > 0 ? ms : null;
}

/**
 * Create a token; the returned secret is the only copy. `projectIds` empty: every project.
 * Throws Prisma's P2002 on a taken name.
 */
export async function createApiToken(
  db: Db,
  input: { name: string; role: Role; projectIds?: readonly string[]; expiresAt?: Date | null },
): Promise<{ token: ApiTokenWithProjects; secret: string }> {
  const secret = `${API_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  const token = await db.apiToken.create({
    data: {
      name: input.name,
      role: input.role,
      secretHash: hashApiToken(secret),
      expiresAt: input.expiresAt ?? null,
      projects: { connect: (input.projectIds ?? []).map((id) => ({ id })) },
    },
    include: { projects: { select: { id: true, name: true } } },
  });
  return { token, secret };
}

/**
 * NOTIFY channel of revocations (payload: the token's id). API servers LISTEN and close the
 * token's WebSocket connections at once (api/auth/revocations.ts); their subscriptions' periodic
 * re-check stays as the safety net for a notice lost while a server was not listening.
 */
export const API_TOKEN_REVOKED_CHANNEL = "api_token_revoked";

/**
 * Revoke by id; returns the token (already revoked ones unchanged), or null when unknown. The
 * notice goes out with the update's commit, so a listener that hears it finds the token revoked.
 */
export async function revokeApiToken(db: Db, id: string): Promise<ApiTokenWithProjects | null> {
  const include = { projects: { select: { id: true, name: true } } } as const;
  const token = await db.apiToken.findUnique({ where: { id }, include });
  if (!token || token.revokedAt) return token;
  return db.$transaction(async (tx) => {
    const revoked = await tx.apiToken.update({ where: { id }, data: { revokedAt: new Date() }, include });
    await tx.$executeRaw`select pg_notify(${API_TOKEN_REVOKED_CHANNEL}, ${id})`;
    return revoked;
  });
}

export type ApiTokenCheck =
  | { ok: true; token: ApiTokenWithProjects }
  | { ok: false; code: "UNAUTHENTICATED" | "FORBIDDEN"; message: string };

/** Record use at most this often, so reads do not write a row each. */
const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * Check an API token secret: unknown or expired → UNAUTHENTICATED, revoked → FORBIDDEN.
 * Records `lastUsedAt` (at most once a minute) on success.
 */
export async function checkApiToken(db: Db, secret: string, now = new Date()): Promise<ApiTokenCheck> {
  const token = secret.startsWith(API_TOKEN_PREFIX)
    ? await db.apiToken.findUnique({
        where: { secretHash: hashApiToken(secret) },
        include: { projects: { select: { id: true, name: true } } },
      })
    : null;
  if (!token) return { ok: false, code: "UNAUTHENTICATED", message: "the API token is not valid" };
  if (token.revokedAt) {
    return {
      ok: false,
      code: "FORBIDDEN",
      message: `API token "${token.name}" was revoked at ${token.revokedAt.toISOString()}; ask an admin for a new one`,
    };
  }
  if (token.expiresAt && token.expiresAt <= now) {
    return {
      ok: false,
      code: "UNAUTHENTICATED",
      message: `API token "${token.name}" expired at ${token.expiresAt.toISOString()}; ask an admin for a new one`,
    };
  }
  if (!token.lastUsedAt || now.getTime() - token.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
    await db.apiToken.update({ where: { id: token.id }, data: { lastUsedAt: now } });
  }
  return { ok: true, token };
}

/** Is there an admin token that works now? (Serving beyond loopback needs one.) */
export async function activeAdminTokenExists(db: Db, now = new Date()): Promise<boolean> {
  const count = await db.apiToken.count({
    where: { role: "ADMIN", revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
  });
  return count > 0;
}
