/**
 * The worker API: claimJob, heartbeatJob, recordJobEvents, completeJob, failJob. Each checks the
 * worker token (worker-auth.ts), then calls the same job lifecycle a database-connected worker
 * calls (platform/worker/job-lifecycle.ts), so both kinds of worker behave alike.
 *
 * A claim returns a *lease* — the worker id (`<token name>/<workerId>`) and the attempt — that
 * the worker passes back with every call about the job; a token can only use leases of its own
 * workers.
 */
import type { JobArtifactInput, MutationResolvers, WorkerCommand } from "../../generated/graphql.ts";
import type { Job, WorkerToken } from "../../generated/prisma/client.ts";
import type { JobResult } from "../../incubation/job.ts";
import { QuotaExceededError } from "../../platform/artifacts/quota.ts";
import { INPUT_LIMITS } from "../../platform/limits.ts";
import {
  type HeartbeatAnswer,
  type Holder,
  JobNotHeldError,
  PRODUCED_ARTIFACT_KINDS,
  type ProducedArtifact,
} from "../../platform/worker/job-lifecycle.ts";
import { type WorkerEvent, workerEvent } from "../../platform/worker/worker-event.ts";
import type { ApiContext } from "../context.ts";
import { decodeGlobalId, toGlobalId } from "../global-id.ts";
import { type UserError, userError } from "../user-errors.ts";
import { requireWorker } from "../worker-auth.ts";

const SHA256 = /^[0-9a-f]{64}$/;
const BATCH_KEY = /^[A-Za-z0-9_.:-]{1,100}$/;

const COMMAND = {
  continue: "CONTINUE",
  cancel: "CANCEL",
  taken_over: "TAKEN_OVER",
} as const satisfies Record<HeartbeatAnswer, WorkerCommand>;

function encodeLease(h: Holder): string {
  return Buffer.from(JSON.stringify([toGlobalId("Job", h.jobId), h.attempt, h.workerId])).toString(
    "base64url",
  );
}

/** The holder a lease names, when it is well-formed and belongs to one of `token`'s workers. */
function decodeLease(lease: string, token: WorkerToken): Holder | null {
  try {
    const [jobGlobalId, attempt, workerId] = JSON.parse(Buffer.from(lease, "base64url").toString()) as [
      string,
      number,
      string,
    ];
    const jobId = decodeGlobalId("Job", jobGlobalId);
    if (!jobId || !Number.isInteger(attempt) || !workerId.startsWith(`${token.name}/`)) return null;
    return { jobId, attempt, workerId };
  } catch {
    return null;
  }
}

const badLease = () =>
  userError(["input", "lease"], "lease is not one this worker token was given by claimJob", "INVALID");

/**
 * Run a lifecycle call for a lease, after the token, the lease and `check` (input problems)
 * passed; not holding the job (any more) is a NOT_HELD user error, a project over its artifact
 * quota QUOTA_EXCEEDED on `quotaField` (the worker fails the job with that message).
 */
async function withLease<T extends object>(
  ctx: ApiContext,
  lease: string,
  empty: T,
  call: (holder: Holder, lifecycle: NonNullable<ApiContext["lifecycle"]>) => Promise<T>,
  check: () => Promise<UserError[]> = async () => [],
  quotaField = "artifacts",
): Promise<T & { userErrors: UserError[] }> {
  const { token, lifecycle } = await requireWorker(ctx);
  const holder = decodeLease(lease, token);
  if (!holder) return { ...empty, userErrors: [badLease()] };
  const problems = await check();
  if (problems.length) return { ...empty, userErrors: problems };
  try {
    return { ...(await call(holder, lifecycle)), userErrors: [] };
  } catch (error) {
    if (error instanceof QuotaExceededError)
      return { ...empty, userErrors: [userError(["input", quotaField], error.message, "QUOTA_EXCEEDED")] };
    if (!(error instanceof JobNotHeldError)) throw error;
    return { ...empty, userErrors: [userError(["input", "lease"], error.message, "NOT_HELD")] };
  }
}

async function missingArtifacts(
  ctx: ApiContext,
  items: { sha256: string; sizeBytes?: unknown }[],
  field: (i: number) => string[],
): Promise<UserError[]> {
  const errors: UserError[] = [];
  for (const [i, item] of items.entries()) {
    // The worker's size is checked too (a stat): the row records it, and a truncated file fails it.
    const size = typeof item.sizeBytes === "number" ? { sizeBytes: item.sizeBytes } : {};
    if (!SHA256.test(item.sha256)) {
      errors.push(userError(field(i), `"${item.sha256}" is not a sha256 (64 lowercase hex digits)`));
    } else if (!(await ctx.artifacts?.has(item.sha256, size))) {
      const what = "sizeBytes" in size ? ` with ${size.sizeBytes} bytes` : "";
      errors.push(
        userError(
          field(i),
          `artifact ${item.sha256} is not in the store${what}: upload it first with PUT /artifacts/${item.sha256}`,
          "NOT_FOUND",
        ),
      );
    }
  }
  return errors;
}

export const workerJobResolvers = {
  Mutation: {
    claimJob: async (
      _: unknown,
      { input }: { input: { workerId: string; labels?: string[] | null; shards?: number[] | null } },
      ctx: ApiContext,
    ) => {
      const { token, lifecycle } = await requireWorker(ctx);
      const errors: UserError[] = [];
      if (!/^[A-Za-z0-9_.:@-]{1,100}$/.test(input.workerId)) {
        errors.push(
          userError(
            ["input", "workerId"],
            `workerId "${input.workerId}" must be 1–100 letters, digits or _.:@-`,
          ),
        );
      }
      const labels = input.labels ?? token.labels;
      for (const [i, label] of labels.entries()) {
        if (!token.labels.includes(label)) {
          errors.push(
            userError(
              ["input", "labels", String(i)],
              `label "${label}" is not granted to worker token "${token.name}" (it has: ${token.labels.join(", ") || "none"}); create a token with it`,
              "NOT_GRANTED",
            ),
          );
        }
      }
      const shards = input.shards ?? [];
      if (shards.length > INPUT_LIMITS.workerShards)
        errors.push(userError(["input", "shards"], `at most ${INPUT_LIMITS.workerShards} shards`));
      for (const [i, shard] of shards.entries()) {
        if (shard < 0 || shard >= INPUT_LIMITS.workerShards)
          errors.push(
            userError(
              ["input", "shards", String(i)],
              `shard must be between 0 and ${INPUT_LIMITS.workerShards - 1}, got ${shard}`,
            ),
          );
      }
      if (errors.length) return { claimed: null, userErrors: errors };
      const workerId = `${token.name}/${input.workerId}`;
      const claimed = await lifecycle.claimNext({ workerId, labels, shards });
      if (!claimed) return { claimed: null, userErrors: [] };
      return {
        claimed: {
          job: await ctx.db.job.findUniqueOrThrow({ where: { id: claimed.jobId } }),
          lease: encodeLease({ jobId: claimed.jobId, workerId, attempt: claimed.attempt }),
          attempt: claimed.attempt,
          spec: claimed.spec,
          resumeFrom: claimed.resumeFrom
            ? await ctx.loaders.artifact.load(claimed.resumeFrom.artifactId)
            : null,
        },
        userErrors: [],
      };
    },

    heartbeatJob: (_: unknown, { input }: { input: { lease: string } }, ctx: ApiContext) =>
      withLease(ctx, input.lease, { command: null as WorkerCommand | null }, async (holder, lifecycle) => ({
        command: COMMAND[await lifecycle.heartbeat(holder)],
      })),

    recordJobEvents: (
      _: unknown,
      { input }: { input: { lease: string; events: unknown[]; batchKey?: string | null } },
      ctx: ApiContext,
    ) => {
      const batchKey = input.batchKey ?? undefined;
      const parsed = input.events.map((e) => workerEvent.safeParse(e));
      const events = parsed.flatMap((p) => (p.success ? [p.data] : [])) as WorkerEvent[];
      const check = async () => {
        if (batchKey !== undefined && !BATCH_KEY.test(batchKey))
          return [
            userError(["input", "batchKey"], "batchKey must be 1–100 letters, digits or _.:-, e.g. 1:17"),
          ];
        if (input.events.length > INPUT_LIMITS.eventsPerBatch)
          return [
            userError(
              ["input", "events"],
              `at most ${INPUT_LIMITS.eventsPerBatch} events per batch; send them in several`,
            ),
          ];
        const errors: UserError[] = parsed.flatMap((p, i) =>
          p.success
            ? []
            : p.error.issues.map((issue) =>
                userError(["input", "events", String(i), ...issue.path.map(String)], issue.message),
              ),
        );
        if (errors.length > 0) return errors;
        const checkpoints = events.flatMap((e, i) =>
          e.type === "checkpoint" ? [{ i, sha256: String(e.sha256), sizeBytes: e.sizeBytes }] : [],
        );
        const field = (k: number) => ["input", "events", String(checkpoints[k]!.i), "sha256"];
        return [...errors, ...(await missingArtifacts(ctx, checkpoints, field))];
      };
      return withLease(
        ctx,
        input.lease,
        { seqs: null as number[] | null },
        async (holder, lifecycle) => ({
          seqs: (await lifecycle.recordEvents(holder, events, batchKey)).seqs,
        }),
        check,
        "events",
      );
    },

    completeJob: (
      _: unknown,
      { input }: { input: { lease: string; result: unknown; artifacts: JobArtifactInput[] } },
      ctx: ApiContext,
    ) => {
      const check = async () => {
        if (input.artifacts.length > INPUT_LIMITS.artifactsPerJob)
          return [
            userError(["input", "artifacts"], `at most ${INPUT_LIMITS.artifactsPerJob} artifacts per job`),
          ];
        const errors: UserError[] = [];
        for (const [i, a] of input.artifacts.entries()) {
          if (!(PRODUCED_ARTIFACT_KINDS as readonly string[]).includes(a.kind)) {
            errors.push(
              userError(
                ["input", "artifacts", String(i), "kind"],
                `kind must be one of ${PRODUCED_ARTIFACT_KINDS.join(", ")}, got "${a.kind}"`,
              ),
            );
          }
        }
        if (typeof input.result !== "object" || input.result === null) {
          errors.push(userError(["input", "result"], "result must be the job's JobResult object"));
        }
        const field = (i: number) => ["input", "artifacts", String(i), "sha256"];
        return [...errors, ...(await missingArtifacts(ctx, input.artifacts, field))];
      };
      return withLease(
        ctx,
        input.lease,
        { job: null as Job | null },
        async (holder, lifecycle) => {
          // check() accepted only PRODUCED_ARTIFACT_KINDS
          const artifacts = input.artifacts as ProducedArtifact[];
          await lifecycle.complete(holder, input.result as JobResult, artifacts);
          return { job: await ctx.db.job.findUnique({ where: { id: holder.jobId } }) };
        },
        check,
      );
    },

    failJob: (
      _: unknown,
      { input }: { input: { lease: string; message: string; permanent: boolean } },
      ctx: ApiContext,
    ) =>
      withLease(ctx, input.lease, { willRetry: null as boolean | null }, (holder, lifecycle) =>
        lifecycle.fail(holder, input.message, input.permanent),
      ),
  },
} satisfies { Mutation: MutationResolvers };
