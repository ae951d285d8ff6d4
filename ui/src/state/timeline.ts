/**
 * The run's stage timeline from its jobs: one bar per stage (one per module for modular
 * training), in pipeline order PT → MT ×K → assembly → FT → evaluation, with wall times and the
 * critical path — the chain of bars that decided when the run finished (PT, the modular job that
 * ended last, FT). Assembly and evaluation happen inside the FT job (its start and the time of
 * its evaluation event), so they are drawn as parts of it.
 */
import type { JobState, JobView, StageKind } from "../api/types.ts";

export interface TimelineBar {
  key: string;
  label: string;
  stage: StageKind;
  moduleIndex: number | null;
  state: JobState;
  attempts: number;
  /** ms since epoch; null while queued. */
  startMs: number | null;
  /** ms since epoch; null while it has not ended. */
  endMs: number | null;
  critical: boolean;
}

export interface Timeline {
  bars: TimelineBar[];
  /** First start .. last end (or `nowMs` while running). */
  fromMs: number | null;
  toMs: number | null;
  /** The critical bars' keys in order, and the wall time from the first one's start to the last one's end. */
  criticalPath: { keys: string[]; wallSeconds: number | null };
}

const STAGE_ORDER: readonly StageKind[] = ["PRETRAIN", "MODULAR", "ASSEMBLE", "FINETUNE", "EVAL", "E2E"];
const STAGE_LABEL: Record<StageKind, string> = {
  PRETRAIN: "PT meta pre-training",
  MODULAR: "MT",
  ASSEMBLE: "assembly",
  FINETUNE: "FT fine-tuning",
  EVAL: "evaluation",
  E2E: "E2E training",
};

const ms = (iso: string | null): number | null => (iso ? Date.parse(iso) : null);

/** Jobs of one (stage, module): retries are further jobs of the same bar. */
export function buildTimeline(jobs: readonly JobView[], nowMs: number): Timeline {
  const groups = new Map<string, JobView[]>();
  for (const job of jobs) {
    const key = `${job.stage}:${job.module?.index ?? "run"}`;
    groups.set(key, [...(groups.get(key) ?? []), job]);
  }
  const bars: TimelineBar[] = [...groups.entries()].map(([key, group]) => {
    const newest = group[group.length - 1]!;
    const starts = group.map((j) => ms(j.startedAt)).filter((x): x is number => x !== null);
    const ended = group.every((j) => j.finishedAt !== null);
    const moduleIndex = newest.module?.index ?? null;
    return {
      key,
      label: moduleIndex === null ? STAGE_LABEL[newest.stage] : `${STAGE_LABEL[newest.stage]} ${moduleIndex}`,
      stage: newest.stage,
      moduleIndex,
      state: newest.state,
      attempts: group.reduce((n, j) => n + j.attempts, 0),
      startMs: starts.length ? Math.min(...starts) : null,
      endMs: ended ? Math.max(...group.map((j) => ms(j.finishedAt)!)) : null,
      critical: false,
    };
  });
  bars.sort(
    (a, b) =>
      STAGE_ORDER.indexOf(a.stage) - STAGE_ORDER.indexOf(b.stage) ||
      (a.moduleIndex ?? -1) - (b.moduleIndex ?? -1),
  );

  // Each stage waits for the whole previous one, so the critical bar of a stage is its last to end.
  const endOf = (bar: TimelineBar) => bar.endMs ?? nowMs;
  const critical: TimelineBar[] = [];
  for (const stage of STAGE_ORDER) {
    const started = bars.filter((b) => b.stage === stage && b.startMs !== null);
    if (!started.length) continue;
    const last = started.reduce((a, b) => (endOf(b) > endOf(a) ? b : a));
    last.critical = true;
    critical.push(last);
  }
  const starts = bars.map((b) => b.startMs).filter((x): x is number => x !== null);
  const fromMs = starts.length ? Math.min(...starts) : null;
  const toMs = fromMs === null ? null : Math.max(...bars.filter((b) => b.startMs !== null).map(endOf));
  const firstCritical = critical[0];
  const lastCritical = critical[critical.length - 1];
  return {
    bars,
    fromMs,
    toMs,
    criticalPath: {
      keys: critical.map((b) => b.key),
      wallSeconds:
        firstCritical?.startMs != null && lastCritical
          ? (endOf(lastCritical) - firstCritical.startMs) / 1000
          : null,
    },
  };
}
