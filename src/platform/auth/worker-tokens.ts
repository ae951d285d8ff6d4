/**
 * Worker tokens: credentials for workers that reach the platform through the API, not the
 * database. A token is `inc_wt_` + 32 random bytes (base64url); only its sha256 is stored, so
 * a leaked database does not leak working tokens, and the secret is shown once, at creation.
 */
import { createHash, randomBytes } from "node:crypto";
import type { WorkerToken } from "../../generated/prisma/client.ts";
import type { Db } from "../db/client.ts";
import { labelProblem, normalizeLabels } from "../queue/placement.ts";

export const WORKER_TOKEN_PREFIX = "inc_wt_";

export const hashWorkerToken = (secret: string) => createHash("sha256").update(secret).digest("hex");

/** What is wrong with a token name or its labels (field, message), or null. */
export function workerTokenInputProblem(input: {
  name: string;
  labels: readonly string[];
}): { field: string[]; message: string } | null {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(input.name)) {
    return {
      field: ["name"],
      message: `name "${input.name}" must be 1–64 letters, digits, "_", "." or "-", e.g. site-a`,
    };
  }
  for (const [i, label] of input.labels.entries()) {
    const problem = labelProblem(label);
    if (problem) return { field: ["labels", String(i)], message: problem };
  }
  return null;
}

/** Create a token; the returned secret is the only copy. Throws Prisma's P2002 on a taken name. */
export async function createWorkerToken(
  db: Db,
  input: { name: string; labels: readonly string[] },
): Promise<{ token: WorkerToken; secret: string }> {
  const secret = `${WORKER_TOKEN_PREFIX}${randomBytes(32).toString("base64url")}`;
  const token = await db.workerToken.create({
    data: { name: input.name, labels: normalizeLabels(input.labels), secretHash: hashWorkerToken(secret) },
  });
  return { token, secret };
}

export type WorkerTokenCheck =
  | { ok: true; token: WorkerToken }
  | { ok: false; code: "UNAUTHENTICATED" | "FORBIDDEN"; message: string };

/**
 * Check a bearer token (the header's value or the bare secret). Records `lastSeenAt` on
 * success, so an operator sees which sites are alive.
 */
export async function checkWorkerToken(
  db: Db,
  authorization: string | undefined | null,
): Promise<WorkerTokenCheck> {
  const secret = (authorization ?? "").replace(/^Bearer\s+/i, "").trim();
  if (!secret) {
    return {
      ok: false,
      code: "UNAUTHENTICATED",
      message:
        "worker calls need a worker token: send `Authorization: Bearer inc_wt_…` (create one with `incubator worker-token create --name <site>`)",
    };
  }
  const token = secret.startsWith(WORKER_TOKEN_PREFIX)
    ? await db.workerToken.findUnique({ where: { secretHash: hashWorkerToken(secret) } })
    : null;
  if (!token) {
    return {
      ok: false,
      code: "UNAUTHENTICATED",
      message: `the worker token is not valid${secret.startsWith(WORKER_TOKEN_PREFIX) ? "" : ` (worker tokens start with ${WORKER_TOKEN_PREFIX})`}`,
    };
  }
  if (token.revokedAt) {
    return {
      ok: false,
      code: "FORBIDDEN",
      message: `worker token "${token.name}" was revoked at ${token.revokedAt.toISOString()}; create a new one`,
    };
  }
  await db.workerToken.update({ where: { id: token.id }, data: { lastSeenAt: new Date() } });
  return { ok: true, token };
}
