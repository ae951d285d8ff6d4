/**
 * Run orchestration: what the API asks of a run (start, cancel, retry a module) and what the
 * platform notices (a worker went silent). Every state change is an occurrence handed to the
 * state machine (src/platform/state/machine.ts), carried out in one transaction by the
 * StateWriter; this file only decides which occurrence, and for silent workers, whether the
 * queue has a retry left.
 */
import type PgBoss from "pg-boss";
import { JobState } from "../../generated/prisma/enums.ts";
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { queueOfJob } from "../queue/placement.ts";
import { StateWriter } from "../state/apply.ts";
import { IllegalTransition } from "../state/machine.ts";
import { staleCutoff } from "./stale-sweep.ts";

export class Dispatcher {
  readonly state: StateWriter;

  constructor(
    private readonly db: Db,
    private readonly boss: PgBoss,
    private readonly logger: Logger,
  ) {
    this.state = new StateWriter(db, boss, logger);
  }

  /** A run was created (QUEUED): start its first jobs. A run that cannot be planned fails. */
  async runCreated(runId: string): Promise<void> {
    try {
      await this.state.apply(runId, { type: "RUN_STARTED" });
    } catch (error) {
      if (error instanceof IllegalTransition) throw error;
      this.logger.error({ runId, err: error }, "run could not be started");
      const reason = error instanceof Error ? error.message : String(error);
      await this.state.apply(runId, { type: "RUN_FAILED", reason });
      throw error;
    }
  }

  /** Cancel queued jobs in the queue and mark running ones; workers stop them within a heartbeat. */
  async cancelRun(runId: string): Promise<void> {
    await this.state.apply(runId, { type: "RUN_CANCELLED" });
  }

  /** Train a FAILED or CANCELLED module again (from its last checkpoint). */
  async retryModule(moduleId: string): Promise<void> {
    const module = await this.db.module.findUniqueOrThrow({ where: { id: moduleId } });
    await this.state.apply(module.runId, { type: "MODULE_RETRIED", moduleId });
  }

  /** Whether pg-boss will retry the job's message once more (false: this failure is its last). */
  async retriesLeft(job: {
    queueJobId: string | null;
    labels: string[];
    shard: number | null;
  }): Promise<boolean> {
    if (!job.queueJobId) return false;
    const message = await this.boss.getJobById(queueOfJob(job), job.queueJobId);
    return message !== null && message.retryCount < message.retryLimit;
  }

  /**
   * Jobs whose worker stopped heartbeating (killed, machine lost) go back to the queue: pg-boss
   * retries them, and the retry resumes from the job's last checkpoint. A job out of retries
   * fails its module and run (its message goes to the dead-letter queue). Returns the job ids.
   */
  async failStaleJobs(staleAfterMs: number): Promise<string[]> {
    const cutoff = await staleCutoff(this.db, staleAfterMs); // the database's clock (stale-sweep.ts)
    const stale = await this.db.job.findMany({
      where: { state: JobState.RUNNING, heartbeatAt: { lt: cutoff } },
    });
    const handed: string[] = [];
    for (const job of stale) {
      const reason = `worker ${job.workerId} stopped heartbeating`;
      const retry = await this.retriesLeft(job);
      try {
        await this.state.apply(
          job.runId,
          { type: "JOB_FAILED", jobId: job.id, reason, retry },
          {
            // Under the run's lock: only if it is still the same silent attempt.
            before: async (tx) => {
              const now = await tx.job.findUniqueOrThrow({ where: { id: job.id } });
              if (
                now.state !== JobState.RUNNING ||
                now.attempts !== job.attempts ||
                (now.heartbeatAt ?? 0) >= cutoff
              )
                throw new StaleJobRecovered();
            },
            ...(job.queueJobId
              ? { message: { queue: queueOfJob(job), id: job.queueJobId, action: "fail" as const, reason } }
              : {}),
          },
        );
      } catch (error) {
        if (error instanceof StaleJobRecovered || error instanceof IllegalTransition) continue; // someone got there first
        throw error;
      }
      this.logger.warn({ jobId: job.id, workerId: job.workerId, retry }, "job's worker went silent");
      handed.push(job.id);
    }
    return handed;
  }
}

/** The job heartbeated (or was handled by another sweeper) since it looked stale. */
class StaleJobRecovered extends Error {}
