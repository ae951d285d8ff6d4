/**
 * The job queue: pg-boss on the same PostgreSQL (no extra service). Training queues
 * `train-job…` (one per placement, see placement.ts) whose messages carry only our `job.id`;
 * the job row holds the spec and the truth about state.
 *
 * pg-boss gives us claiming (SKIP LOCKED), retries with backoff, a dead-letter queue and
 * cancellation of queued work. Liveness of *running* jobs is ours: workers heartbeat into
 * `job.heartbeat_at`, and `failStaleJobs` hands a job whose worker went silent back to pg-boss
 * for a retry — which resumes from the job's last checkpoint.
 */
import PgBoss from "pg-boss";
import { ADVISORY_LOCK, withAdvisoryLock } from "../db/advisory-lock.ts";

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

/** Retry, expiry and dead-letter policy of every training queue (one per placement). */
function trainQueuePolicy(opts: QueueOptions) {
  return {
    retryLimit: opts.retryLimit ?? 3,
    retryDelay: opts.retryDelay ?? 2,
    retryBackoff: true,
    // Liveness comes from our heartbeats, not from this. pg-boss 10 caps expiry at 24 h:
    // a job still active after 23 h is retried by pg-boss, and the original worker stops
    // its copy when its heartbeat hears the job was taken over (see job-lifecycle.ts).
    expireInSeconds: 60 * 60 * 23,
    deadLetter: DEAD_LETTER_QUEUE,
  };
}

/** What `ensureTrainQueue` needs about each open queue client: its policy and its database. */
const settings = new WeakMap<PgBoss, { opts: QueueOptions; databaseUrl: string }>();

export async function openQueue(databaseUrl: string, opts: QueueOptions = {}): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: databaseUrl, max: 4, schema: "pgboss" });
  boss.on("error", () => {
    // pg-boss reports transient maintenance errors here; the callers' own calls still throw.
  });
  await boss.start();
  settings.set(boss, { opts, databaseUrl });
  await ensureQueue(boss, DEAD_LETTER_QUEUE, () => boss.createQueue(DEAD_LETTER_QUEUE));
  await ensureTrainQueue(boss, TRAIN_QUEUE);
  return boss;
}

/** Create a training queue (one per placement, see placement.ts) unless it exists. */
export async function ensureTrainQueue(boss: PgBoss, name: string): Promise<void> {
  const opts = settings.get(boss)?.opts ?? {};
  await ensureQueue(boss, name, () => boss.createQueue(name, { name, ...trainQueuePolicy(opts) }));
}

/**
 * Queues are created rarely (first start, a new placement) but by every process at once: API
 * replicas and workers start together. pg-boss's `create_queue` is `insert … on conflict do
 * nothing` followed by foreign keys on the queue table, and two of those at once deadlock, so
 * creators take turns under one advisory lock and look again once it is theirs.
 */
async function ensureQueue(boss: PgBoss, name: string, create: () => Promise<void>): Promise<void> {
  if (await boss.getQueue(name)) return;
  const databaseUrl = settings.get(boss)?.databaseUrl;
  if (!databaseUrl) throw new Error("ensureTrainQueue: the queue client was not opened with openQueue");
  await withAdvisoryLock(databaseUrl, ADVISORY_LOCK.QUEUE_CREATION, async () => {
    if (!(await boss.getQueue(name))) await create();
  });
}

/** Names of the training queues that exist now (placement.ts reads what each one needs). */
export async function trainQueueNames(boss: PgBoss): Promise<string[]> {
  const queues = (await boss.getQueues()) as { name: string }[];
  return queues.map((q) => q.name).filter((n) => n.startsWith(TRAIN_QUEUE) && n !== DEAD_LETTER_QUEUE);
}

export async function enqueueJob(
  boss: PgBoss,
  queue: string,
  jobId: string,
  opts: { singletonKey?: string; priority?: number } = {},
): Promise<string> {
  await ensureTrainQueue(boss, queue);
  const id = await boss.send(queue, { jobId } satisfies TrainMessage, {
    ...(opts.singletonKey ? { singletonKey: opts.singletonKey } : {}),
    priority: opts.priority ?? 0,
  });
  if (!id) throw new Error(`could not enqueue job ${jobId}: an identical singleton job is already queued`);
  return id;
}
