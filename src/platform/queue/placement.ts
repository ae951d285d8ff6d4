/**
 * Worker placement: which worker may take which job.
 *
 * A job may require worker labels (`site=a`, `gpu=h100`; from the run's `placement`) and may
 * read one data shard (modular jobs of decentralised runs). A worker has labels and may be
 * pinned to shards. It may take a job when it has every label the job requires and, if it is
 * pinned, the job reads one of its shards (a pinned worker caches only those shards, so it
 * takes no job that reads the full training set).
 *
 * pg-boss cannot filter on message data, so the placement is in the queue *name*: each distinct
 * placement is its own pg-boss queue (`train-job`, `train-job#shard-2`, `train-job[site=a]`,
 * `train-job#shard-0[gpu=h100,site=a]`), created on first use with the same retry and
 * dead-letter policy. A worker lists the queues and polls those it qualifies for. pg-boss
 * keeps doing claiming (SKIP LOCKED), retries with backoff, dead letters and singletons.
 */
import { runPlacement } from "../db/run-columns.ts";
import { TRAIN_QUEUE } from "./queue.ts";

export interface JobPlacement {
  /** Labels the worker must have (sorted, unique). */
  labels: string[];
  /** The shard the job reads; undefined when it reads the whole split. */
  shard?: number | undefined;
}

export interface WorkerPlacement {
  labels: readonly string[];
  /** Shards the worker is pinned to; empty: not pinned (takes any job). */
  shards: readonly number[];
}

/** `key=value` or a bare `key`; letters, digits, `_`, `.`, `-`. */
const LABEL = /^[A-Za-z0-9_.-]+(=[A-Za-z0-9_.-]+)?$/;

/** The problem with a label, or null when it is well-formed. */
export function labelProblem(label: string): string | null {
  return LABEL.test(label)
    ? null
    : `label "${label}" must look like key=value (letters, digits, "_", ".", "-"), e.g. site=a`;
}

/** Parse `site=a,gpu=h100` (a CLI flag); throws naming `flag` when a label is malformed. */
export function parseLabels(list: string | undefined, flag = "--labels"): string[] {
  const labels = (list ?? "")
    .split(",")
    .map((l) => l.trim())
    .filter(Boolean);
  for (const label of labels) {
    const problem = labelProblem(label);
    if (problem) throw new Error(`${flag}: ${problem}`);
  }
  return normalizeLabels(labels);
}

/** Parse `0,2` (a CLI flag); throws naming `flag` when an entry is not a shard index. */
export function parseShards(list: string | undefined, flag = "--shards"): number[] {
  const entries = (list ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const shards = entries.map((s) => {
    if (!/^\d+$/.test(s))
      throw new Error(`${flag}: "${s}" is not a shard index (0, 1, 2, …), e.g. ${flag} 0,2`);
    return Number(s);
  });
  return [...new Set(shards)].sort((a, b) => a - b);
}

export function normalizeLabels(labels: readonly string[]): string[] {
  return [...new Set(labels)].sort();
}

export function queueNameFor(p: JobPlacement): string {
  const shard = p.shard !== undefined && p.shard !== null ? `#shard-${p.shard}` : "";
  const labels = p.labels.length ? `[${normalizeLabels(p.labels).join(",")}]` : "";
  return `${TRAIN_QUEUE}${shard}${labels}`;
}

const QUEUE_NAME = /^train-job(?:#shard-(\d+))?(?:\[([^\]]+)\])?$/;

/** The placement a queue name stands for; null for queues that are not training queues. */
export function placementOfQueue(name: string): JobPlacement | null {
  const match = QUEUE_NAME.exec(name);
  if (!match) return null;
  return {
    labels: match[2] ? match[2].split(",") : [],
    ...(match[1] !== undefined ? { shard: Number(match[1]) } : {}),
  };
}

export function mayTake(worker: WorkerPlacement, job: JobPlacement): boolean {
  if (!job.labels.every((l) => worker.labels.includes(l))) return false;
  if (worker.shards.length === 0) return true;
  return job.shard !== undefined && worker.shards.includes(job.shard);
}

/** Labels a run's job needs: run-wide entries (no moduleIndex) plus those for its module. */
export function labelsForJob(placement: unknown, moduleIndex: number | undefined): string[] {
  return normalizeLabels(
    runPlacement(placement)
      .filter((e) => e.moduleIndex === undefined || e.moduleIndex === null || e.moduleIndex === moduleIndex)
      .flatMap((e) => e.labels),
  );
}

/** A job's placement, from its run's `placement` and its stored spec (the shard it reads). */
export function placementOfJob(
  runPlacement: unknown,
  spec: { moduleIndex?: number | undefined; dataset: unknown },
): JobPlacement {
  const shard = (spec.dataset as { shard?: { index: number } }).shard?.index;
  return { labels: labelsForJob(runPlacement, spec.moduleIndex), ...(shard !== undefined ? { shard } : {}) };
}

/** The queue of a job row (its `labels` and `shard` columns). */
export function queueOfJob(job: { labels: string[]; shard: number | null }): string {
  return queueNameFor({ labels: job.labels, ...(job.shard !== null ? { shard: job.shard } : {}) });
}
