/**
 * Job wait and run times, observed where every job state change is made (state/apply.ts calls
 * this once per committed transition, with the rows as they were and the database's clock).
 */
import { JobAttemptOutcome, JobState, jobRunSeconds, jobWaitSeconds, type StageKind } from "./metrics.ts";

/** A job row as the transition found it. */
export interface JobBefore {
  id: string;
  stage: StageKind;
  state: JobState;
  createdAt: Date;
  startedAt: Date | null;
}

/** What the transition wrote for a job. */
export interface JobChange {
  id: string;
  state: JobState;
  attempt?: number;
}

const ENDED: Partial<Record<JobState, JobAttemptOutcome>> = {
  [JobState.SUCCEEDED]: JobAttemptOutcome.SUCCEEDED,
  [JobState.FAILED]: JobAttemptOutcome.FAILED,
  [JobState.CANCELLED]: JobAttemptOutcome.CANCELLED,
  [JobState.QUEUED]: JobAttemptOutcome.REQUEUED,
};

const seconds = (from: Date, to: Date) => Math.max(0, (to.getTime() - from.getTime()) / 1000);

/** Observe a committed transition: claims (wait time of first attempts) and attempts that ended (run time). */
export function recordJobChanges(
  before: readonly JobBefore[],
  changes: readonly JobChange[],
  now: Date,
): void {
  for (const change of changes) {
    const was = before.find((j) => j.id === change.id);
    if (!was) continue;
    if (was.state === JobState.QUEUED && change.state === JobState.RUNNING && change.attempt === 1) {
      jobWaitSeconds.observe({ stage: was.stage }, seconds(was.createdAt, now));
    }
    const outcome = ENDED[change.state];
    if (was.state === JobState.RUNNING && outcome && was.startedAt) {
      jobRunSeconds.observe({ stage: was.stage, outcome }, seconds(was.startedAt, now));
    }
  }
}
