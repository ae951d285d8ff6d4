/**
 * The run/module/job state machine, as one pure function: given a run's current rows and what
 * just happened, it returns every state to write, the jobs to create and enqueue, and the
 * events to append — or throws `IllegalTransition`. Nothing here touches the database; apply.ts
 * carries a transition out in one transaction, and the dispatcher and the job lifecycle both go
 * through it, so a state changes in exactly one place.
 *
 *   run:    QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED;  FAILED | CANCELLED → RUNNING (a module retried)
 *   job:    QUEUED → RUNNING → SUCCEEDED | FAILED | QUEUED (retry);  QUEUED | RUNNING → CANCELLED;
 *           FAILED | CANCELLED → QUEUED (its module retried);  RUNNING → RUNNING (taken over)
 *   module: follows its newest job; PENDING until it has one.
 *
 *   INCUBATION    PRETRAIN (unless a meta model is given) → K × MODULAR (parallel) → FINETUNE
 *                 (assembles stage i from module i first, then fine-tunes, evaluates, exports)
 *   reuse run     (INCUBATION with reuseModulesFrom) no PRETRAIN (the source's meta model is given)
 *                 → MODULAR only for the retrained modules (its reused ones are SUCCEEDED from the
 *                 start) → FINETUNE; with nothing to retrain, FINETUNE at once
 *   E2E           E2E (trains, evaluates, exports)
 *   META_PRETRAIN PRETRAIN → a MetaModel row
 */
import { JobState, ModuleState, RunKind, RunState, type StageKind } from "../../generated/prisma/enums.ts";
import { type NewRunEvent, RunEventType } from "../events/run-event.ts";

export interface RunSnapshot {
  run: { kind: RunKind; state: RunState; metaModelGiven: boolean };
  /** `reused`: taken as it is from an earlier run (SUCCEEDED from the start; never trained here). */
  modules: readonly { id: string; index: number; state: ModuleState; reused?: boolean }[];
  /** Oldest first. */
  jobs: readonly { id: string; stage: StageKind; state: JobState; moduleId: string | null }[];
}

/** What happened. */
export type Occurrence =
  /** The run was created: start its first jobs. */
  | { type: "RUN_STARTED" }
  /** A worker claimed a job (attempt n); a RUNNING job claimed again was taken over. */
  | { type: "JOB_CLAIMED"; jobId: string; workerId: string; attempt: number }
  /** A job finished and its artifacts are recorded. `accuracy`: its held-out accuracy, if any. */
  | { type: "JOB_SUCCEEDED"; jobId: string; accuracy: number | null }
  /** A job failed or its worker went silent; `retry`: it goes back to the queue, else it is final. */
  | { type: "JOB_FAILED"; jobId: string; reason: string; retry: boolean }
  | { type: "RUN_CANCELLED" }
  /** An operator asked for a FAILED or CANCELLED module to be trained again. */
  | { type: "MODULE_RETRIED"; moduleId: string }
  /** The run could not be dispatched (bad rows, missing weights). */
  | { type: "RUN_FAILED"; reason: string };

export interface JobWrite {
  id: string;
  state: JobState;
  /** RUNNING: the claim. */
  attempt?: number;
  workerId?: string;
  /** QUEUED again or FAILED: why; null clears the last error. */
  error?: string | null;
}

export interface NewJob {
  id: string;
  stage: StageKind;
  moduleId: string | null;
  moduleIndex: number | null;
}

export interface Transition {
  run: { state: RunState; error: string | null; resultFromJob?: string } | null;
  modules: { id: string; state: ModuleState }[];
  jobs: JobWrite[];
  /** Job rows to insert (QUEUED); apply.ts builds their specs from the run's rows. */
  create: NewJob[];
  /** Jobs to hand to the queue: the created ones and any put back (retried modules). */
  enqueue: string[];
  /** The PRETRAIN job whose weights become a MetaModel row. */
  recordMetaModelFrom: string | null;
  events: NewRunEvent[];
}

export class IllegalTransition extends Error {
  override name = "IllegalTransition";
}

const FINISHED_RUN: ReadonlySet<RunState> = new Set([
  RunState.SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELLED,
]);

/** Builds a transition while keeping the snapshot's view current (so later rules see earlier writes). */
class Builder {
  readonly out: Transition = {
    run: null,
    modules: [],
    jobs: [],
    create: [],
    enqueue: [],
    recordMetaModelFrom: null,
    events: [],
  };
  private runState: RunState;
  private readonly moduleStates = new Map<string, ModuleState>();
  private readonly jobStates = new Map<string, JobState>();

  constructor(
    readonly s: RunSnapshot,
    private readonly newId: () => string,
  ) {
    this.runState = s.run.state;
    for (const m of s.modules) this.moduleStates.set(m.id, m.state);
    for (const j of s.jobs) this.jobStates.set(j.id, j.state);
  }

  get currentRunState(): RunState {
    return this.runState;
  }

  moduleState(id: string): ModuleState {
    return this.moduleStates.get(id) ?? ModuleState.PENDING;
  }

  jobState(id: string): JobState | undefined {
    return this.jobStates.get(id);
  }

  moduleIndex(id: string | null): number | null {
    return id === null ? null : (this.s.modules.find((m) => m.id === id)?.index ?? null);
  }

  setRun(
    state: RunState,
    extra: { error?: string | null; resultFromJob?: string; accuracy?: number | null } = {},
  ) {
    this.runState = state;
    this.out.run = {
      state,
      error: extra.error ?? null,
      ...(extra.resultFromJob ? { resultFromJob: extra.resultFromJob } : {}),
    };
    this.out.events.push({
      type: RunEventType.RUN_STATE,
      state,
      ...(extra.error ? { error: extra.error } : {}),
      ...(extra.accuracy !== undefined ? { finalAccuracy: extra.accuracy } : {}),
    });
  }

  setModule(id: string, state: ModuleState, retry = false) {
    if (this.moduleState(id) === state && !retry) return;
    this.moduleStates.set(id, state);
    this.out.modules = [...this.out.modules.filter((m) => m.id !== id), { id, state }];
    this.out.events.push({
      type: RunEventType.MODULE_STATE,
      moduleIndex: this.moduleIndex(id),
      state,
      retry,
    });
  }

  setJob(job: RunSnapshot["jobs"][number] | NewJob, write: Omit<JobWrite, "id">) {
    this.jobStates.set(job.id, write.state);
    this.out.jobs.push({ id: job.id, ...write });
    this.out.events.push({
      type: RunEventType.JOB_STATE,
      moduleIndex: this.moduleIndex(job.moduleId),
      jobId: job.id,
      stage: job.stage,
      state: write.state,
      ...(write.attempt !== undefined ? { attempt: write.attempt } : {}),
      ...(write.workerId !== undefined ? { workerId: write.workerId } : {}),
      ...(write.error ? { reason: write.error } : {}),
    });
  }

  createJob(stage: StageKind, moduleId: string | null = null) {
    const job: NewJob = { id: this.newId(), stage, moduleId, moduleIndex: this.moduleIndex(moduleId) };
    this.out.create.push(job);
    this.out.enqueue.push(job.id);
    this.out.events.push({
      type: RunEventType.JOB_STATE,
      moduleIndex: job.moduleIndex,
      jobId: job.id,
      stage,
      state: JobState.QUEUED,
    });
    this.jobStates.set(job.id, JobState.QUEUED);
    if (moduleId) this.setModule(moduleId, ModuleState.QUEUED);
  }

  /** MODULAR jobs for the modules this run trains; FINETUNE at once when it reuses them all. */
  createModularJobs() {
    const toTrain = [...this.s.modules].filter((m) => !m.reused).sort((a, b) => a.index - b.index);
    for (const m of toTrain) this.createJob("MODULAR", m.id);
    if (toTrain.length === 0) this.createJob("FINETUNE");
  }
}

function jobOf(s: RunSnapshot, jobId: string) {
  const job = s.jobs.find((j) => j.id === jobId);
  if (!job) throw new IllegalTransition(`job ${jobId} is not a job of this run`);
  return job;
}

function what(job: { stage: StageKind; moduleId: string | null }, b: Builder): string {
  const index = b.moduleIndex(job.moduleId);
  return index !== null ? `module ${index}` : job.stage.toLowerCase();
}

/** The pure transition: what `occurrence` does to the run in `s`. `newId` names created jobs. */
export function transition(s: RunSnapshot, occurrence: Occurrence, newId: () => string): Transition {
  const b = new Builder(s, newId);
  switch (occurrence.type) {
    case "RUN_STARTED": {
      if (s.run.state !== RunState.QUEUED)
        throw new IllegalTransition(`the run is ${s.run.state}; only a QUEUED run starts`);
      b.setRun(RunState.RUNNING);
      if (s.run.kind === RunKind.E2E) b.createJob("E2E");
      else if (s.run.kind === RunKind.INCUBATION && s.run.metaModelGiven) b.createModularJobs();
      else b.createJob("PRETRAIN");
      break;
    }

    case "JOB_CLAIMED": {
      const job = jobOf(s, occurrence.jobId);
      if (s.run.state !== RunState.RUNNING)
        throw new IllegalTransition(`the run is ${s.run.state}; its jobs are not claimed`);
      if (job.state !== JobState.QUEUED && job.state !== JobState.RUNNING)
        throw new IllegalTransition(`job ${job.id} is ${job.state}; only a QUEUED or RUNNING job is claimed`);
      b.setJob(job, {
        state: JobState.RUNNING,
        attempt: occurrence.attempt,
        workerId: occurrence.workerId,
        error: null,
      });
      if (job.moduleId) b.setModule(job.moduleId, ModuleState.RUNNING);
      break;
    }

    case "JOB_SUCCEEDED": {
      const job = jobOf(s, occurrence.jobId);
      if (job.state !== JobState.RUNNING)
        throw new IllegalTransition(`job ${job.id} is ${job.state}; only a RUNNING job succeeds`);
      b.setJob(job, { state: JobState.SUCCEEDED });
      if (job.moduleId) b.setModule(job.moduleId, ModuleState.SUCCEEDED);
      // A module may finish after its run failed (another module's final failure): it keeps its
      // result for a later retry, but the run does not move.
      if (s.run.state !== RunState.RUNNING) break;
      advance(b, job, occurrence.accuracy);
      break;
    }

    case "JOB_FAILED": {
      const job = jobOf(s, occurrence.jobId);
      if (job.state !== JobState.RUNNING)
        throw new IllegalTransition(`job ${job.id} is ${job.state}; only a RUNNING job fails`);
      if (occurrence.retry) {
        b.setJob(job, { state: JobState.QUEUED, error: occurrence.reason });
        if (job.moduleId) b.setModule(job.moduleId, ModuleState.QUEUED);
        break;
      }
      b.setJob(job, { state: JobState.FAILED, error: occurrence.reason });
      if (job.moduleId) b.setModule(job.moduleId, ModuleState.FAILED);
      if (s.run.state === RunState.RUNNING)
        b.setRun(RunState.FAILED, { error: `${what(job, b)} failed: ${occurrence.reason}` });
      break;
    }

    case "RUN_CANCELLED": {
      if (FINISHED_RUN.has(s.run.state))
        throw new IllegalTransition(`the run is ${s.run.state}; only a QUEUED or RUNNING run is cancelled`);
      for (const job of s.jobs)
        if (job.state === JobState.QUEUED || job.state === JobState.RUNNING)
          b.setJob(job, { state: JobState.CANCELLED });
      for (const m of s.modules)
        if (
          m.state === ModuleState.PENDING ||
          m.state === ModuleState.QUEUED ||
          m.state === ModuleState.RUNNING
        )
          b.setModule(m.id, ModuleState.CANCELLED);
      b.setRun(RunState.CANCELLED); // last: the terminal event ends the stream
      break;
    }

    case "MODULE_RETRIED": {
      const module = s.modules.find((m) => m.id === occurrence.moduleId);
      if (!module) throw new IllegalTransition(`module ${occurrence.moduleId} is not a module of this run`);
      if (module.state !== ModuleState.FAILED && module.state !== ModuleState.CANCELLED)
        throw new IllegalTransition(
          `module ${module.index} is ${module.state}; only a FAILED or CANCELLED module is retried`,
        );
      const job = s.jobs.findLast((j) => j.moduleId === module.id);
      if (!job) throw new IllegalTransition(`module ${module.index} has no job to retry (it never started)`);
      if (s.run.state !== RunState.RUNNING) b.setRun(RunState.RUNNING);
      b.setModule(module.id, ModuleState.QUEUED, true);
      b.setJob(job, { state: JobState.QUEUED, error: null });
      b.out.enqueue.push(job.id);
      break;
    }

    case "RUN_FAILED": {
      if (FINISHED_RUN.has(s.run.state))
        throw new IllegalTransition(`the run is ${s.run.state}; it cannot fail now`);
      b.setRun(RunState.FAILED, { error: occurrence.reason });
      break;
    }
  }
  return b.out;
}

/** After a job of a RUNNING run succeeded: the next stage, or the run's end. */
function advance(b: Builder, job: RunSnapshot["jobs"][number], accuracy: number | null): void {
  const { s } = b;
  switch (job.stage) {
    case "PRETRAIN":
      b.out.recordMetaModelFrom = job.id;
      if (s.run.kind === RunKind.META_PRETRAIN) b.setRun(RunState.SUCCEEDED, { resultFromJob: job.id });
      else if (!s.jobs.some((j) => j.stage === "MODULAR")) b.createModularJobs();
      return;
    case "MODULAR": {
      const allDone = s.modules.every((m) => b.moduleState(m.id) === ModuleState.SUCCEEDED);
      if (allDone && !s.jobs.some((j) => j.stage === "FINETUNE")) b.createJob("FINETUNE");
      return;
    }
    case "FINETUNE":
    case "E2E":
      b.setRun(RunState.SUCCEEDED, { resultFromJob: job.id, accuracy });
      return;
    default:
      throw new IllegalTransition(`a ${job.stage} job has no place in a ${s.run.kind} run`);
  }
}
