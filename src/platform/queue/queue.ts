/**
 * The job queue: pg-boss on the same PostgreSQL (no extra service). One queue, `train-job`,
 * whose messages carry only our `job.id`; the job row holds the spec and the truth about state.
 *
 * pg-boss gives us claiming (SKIP LOCKED), retries with backoff, a dead-letter queue and
 * cancellation of queued work. Liveness of *running* jobs is ours: workers heartbeat into
 * `job.heartbeat_at`, and `failStaleJobs` hands a job whose worker went silent back to pg-boss
 * for a retry — which resumes from the job's last checkpoint.
 */
import PgBoss from "pg-boss";

export const TRAIN_QUEUE = "train-job";
export const DEAD_LETTER_QUEUE = "train-job-dead";

export interface TrainMessage {
  jobId: string;
}

export interface QueueOptions {
  /** Attempts after the first (default 3). */
  retryLimit?: number;
  /** Seconds before a retry (default 2, with backoff). */
  retryDelay?: number;
}

export async function openQueue(databaseUrl: string, opts: QueueOptions = {}): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: databaseUrl, max: 4, schema: "pgboss" });
  boss.on("error", () => {
    // pg-boss reports transient maintenance errors here; the callers' own calls still throw.
  });
  await boss.start();
  for (const name of [DEAD_LETTER_QUEUE, TRAIN_QUEUE]) {
    if (await boss.getQueue(name)) continue;
    await boss.createQueue(name, {
      name,
      ...(name === TRAIN_QUEUE
        ? {
            retryLimit: opts.retryLimit ?? 3,
            retryDelay: opts.retryDelay ?? 2,
            retryBackoff: true,
            // Liveness comes from our heartbeats, not from this. pg-boss 10 caps expiry at 24 h:
            // a job still active after 23 h is retried by pg-boss, and the original worker stops
            // its copy when it sees the job claimed by another (see TrainingWorker's heartbeat).
            expireInSeconds: 60 * 60 * 23,
            deadLetter: DEAD_LETTER_QUEUE,
          }
        : {}),
    });
  }
  return boss;
}

export async function enqueueJob(
  boss: PgBoss,
  jobId: string,
  opts: { singletonKey?: string; priority?: number } = {},
): Promise<string> {
  const id = await boss.send(TRAIN_QUEUE, { jobId } satisfies TrainMessage, {
    ...(opts.singletonKey ? { singletonKey: opts.singletonKey } : {}),
    priority: opts.priority ?? 0,
  });
  if (!id) throw new Error(`could not enqueue job ${jobId}: an identical singleton job is already queued`);
  return id;
}
