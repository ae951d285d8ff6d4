/**
 * Worker calls carry a worker token (`Authorization: Bearer inc_wt_…`, or the graphql-ws
 * connection parameter `authorization`). No token or an unknown one: UNAUTHENTICATED; a revoked
 * one: FORBIDDEN — each with a message that says what to do.
 */
import { GraphQLError } from "graphql";
import type { WorkerToken } from "../generated/prisma/client.ts";
import { checkWorkerToken } from "../platform/auth/worker-tokens.ts";
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
