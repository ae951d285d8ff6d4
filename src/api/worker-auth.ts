/**
 * Worker calls carry a worker token (`Authorization: Bearer inc_wt_…`, or the graphql-ws
 * connection parameter `authorization`). No token or an unknown one: UNAUTHENTICATED; a revoked
 * one: FORBIDDEN — each with a message that says what to do.
 */
import type { RequestHandler } from "express";
import { GraphQLError } from "graphql";
import type { WorkerToken } from "../generated/prisma/client.ts";
import { checkWorkerToken } from "../platform/auth/worker-tokens.ts";
import type { Db } from "../platform/db/client.ts";
import type { JobLifecycle } from "../platform/worker/job-lifecycle.ts";
import type { ApiContext } from "./context.ts";

export async function requireWorker(
  ctx: ApiContext,
): Promise<{ token: WorkerToken; lifecycle: JobLifecycle }> {
  const check = await checkWorkerToken(ctx.db, ctx.authorization);
  if (!check.ok) {
    throw new GraphQLError(check.message, {
      extensions: { code: check.code, http: { status: check.code === "FORBIDDEN" ? 403 : 401 } },
    });
  }
  if (!ctx.lifecycle) {
    throw new GraphQLError("this API server runs no job queue, so it serves no workers", {
      extensions: { code: "WORKERS_UNAVAILABLE" },
    });
  }
  return { token: check.token, lifecycle: ctx.lifecycle };
}

/** The same check for worker-only HTTP routes (uploads, shard downloads): 401/403 with the reason. */
export function requireWorkerToken(db: Db): RequestHandler {
  return async (req, res, next) => {
    const check = await checkWorkerToken(db, req.headers.authorization);
    if (!check.ok) {
      res.status(check.code === "FORBIDDEN" ? 403 : 401).json({ error: check.message, code: check.code });
      return;
    }
    next();
  };
}
