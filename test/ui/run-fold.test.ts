/**
 * The dashboard's pure state code, in Node: the event fold (order, duplicates, gaps, resume
 * from a saved fold), the chart's decimation and the stage timeline's critical path.
 */
import { describe, expect, it } from "vitest";
import type { JobView, RunEventView } from "../../ui/src/api/types.ts";
import { decimate } from "../../ui/src/state/decimate.ts";
import {
  applyEvents,
  emptyFold,
  type KeyValueStore,
  restoreFold,
  saveFold,
} from "../../ui/src/state/run-fold.ts";
import { buildTimeline } from "../../ui/src/state/timeline.ts";

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const progress = (seq: number, moduleIndex: number | null, step: number): RunEventView => ({
  seq,
  type: "PROGRESS",
  moduleIndex,
  createdAt: at(seq),
  stage: moduleIndex === null ? "PRETRAIN" : "MODULAR",
  step,
  totalSteps: 100,
  loss: 2 - step / 100,
  lr: 0.001,
  imagesPerSecond: 10,
  etaSeconds: 100 - step,
});

class MemoryStore implements KeyValueStore {
  readonly items = new Map<string, string>();
  getItem = (k: string) => this.items.get(k) ?? null;
  setItem = (k: string, v: string) => void this.items.set(k, v);
  removeItem = (k: string) => void this.items.delete(k);
}

describe("the run event fold", () => {
  it("applies events in seq order into per-module and per-stage series", () => {
    const fold = emptyFold("r");
    const outcome = applyEvents(fold, [progress(1, null, 10), progress(2, 0, 5), progress(3, 0, 15)]);
    expect(outcome).toEqual({ applied: 3, duplicates: 0, gapAt: null });
    expect(fold.series["run:PRETRAIN"]!.map((p) => p[0])).toEqual([1]);
    expect(fold.series["module:0"]!.map((p) => p[0])).toEqual([2, 3]);
    expect(fold.modules[0]).toMatchObject({ step: 15, progressSeq: 3, stepsPerSecond: 10 });
  });

  it("drops events it already has (a replay) and stops at a gap", () => {
    const fold = emptyFold("r");
    applyEvents(fold, [progress(1, 0, 1), progress(2, 0, 2)]);
    const outcome = applyEvents(fold, [
      progress(2, 0, 2),
      progress(3, 0, 3),
      progress(5, 0, 5),
      progress(6, 0, 6),
    ]);
    expect(outcome).toEqual({ applied: 1, duplicates: 1, gapAt: 5 });
    expect(fold.lastSeq).toBe(3);
    expect(fold.series["module:0"]!.map((p) => p[0])).toEqual([1, 2, 3]);
  });

  it("resumes from a saved fold with its lastSeq, and starts over from an unreadable one", () => {
    const store = new MemoryStore();
    const fold = emptyFold("r");
    applyEvents(fold, [progress(1, 0, 1), progress(2, 1, 1)]);
    saveFold(fold, store);
    const back = restoreFold("r", store);
    expect(back.lastSeq).toBe(2);
    expect(applyEvents(back, [progress(2, 1, 1), progress(3, 1, 2)])).toEqual({
      applied: 1,
      duplicates: 1,
      gapAt: null,
    });
    expect(restoreFold("other", store).lastSeq).toBe(0);
    store.setItem("incubator.runEvents.r", "{not json");
    expect(restoreFold("r", store).lastSeq).toBe(0);
  });

  it("counts the events that change the API's rows (states, artifacts), not progress", () => {
    const fold = emptyFold("r");
    applyEvents(fold, [
      progress(1, 0, 1),
      { seq: 2, type: "MODULE_STATE", moduleIndex: 0, createdAt: at(2), moduleState: "SUCCEEDED" },
      {
        seq: 3,
        type: "RUN_STATE",
        moduleIndex: null,
        createdAt: at(3),
        runState: "SUCCEEDED",
        finalAccuracy: 0.5,
      },
    ]);
    expect(fold.rowChanges).toBe(2);
    expect(fold.modules[0]!.state).toBe("SUCCEEDED");
    expect(fold.finalAccuracy).toBe(0.5);
  });
});

describe("decimation", () => {
  it("keeps short series whole and reduces long ones to about two points per bucket, keeping extremes", () => {
    const short = [1, 2, 3].map((x) => ({ x, y: x }));
    expect(decimate(short, 10)).toEqual(short);
    const long = Array.from({ length: 10_000 }, (_, x) => ({ x, y: x === 5_000 ? 99 : Math.sin(x) }));
    const out = decimate(long, 100);
    expect(out.length).toBeLessThanOrEqual(200);
    expect(out.some((p) => p.y === 99)).toBe(true);
    expect(out.map((p) => p.x)).toEqual([...out.map((p) => p.x)].sort((a, b) => a - b));
  });
});

describe("the stage timeline", () => {
  const job = (
    stage: JobView["stage"],
    module: number | null,
    start: number,
    end: number | null,
  ): JobView => ({
    id: `${stage}${module}${start}`,
    stage,
    state: end === null ? "RUNNING" : "SUCCEEDED",
    attempts: 1,
    workerId: "w",
    startedAt: at(start),
    finishedAt: end === null ? null : at(end),
    module: module === null ? null : { index: module },
  });

  it("orders PT → MT ×K → FT and marks the bars that decided the end as the critical path", () => {
    const t = buildTimeline(
      [
        job("FINETUNE", null, 40, 50),
        job("MODULAR", 1, 10, 38),
        job("MODULAR", 0, 10, 30),
        job("PRETRAIN", null, 0, 10),
      ],
      Date.parse(at(60)),
    );
    expect(t.bars.map((b) => b.key)).toEqual(["PRETRAIN:run", "MODULAR:0", "MODULAR:1", "FINETUNE:run"]);
    expect(t.criticalPath.keys).toEqual(["PRETRAIN:run", "MODULAR:1", "FINETUNE:run"]);
    expect(t.criticalPath.wallSeconds).toBe(50);
  });

  it("merges a module's retried jobs into one bar and runs open bars to now", () => {
    const t = buildTimeline([job("MODULAR", 0, 0, 5), job("MODULAR", 0, 8, null)], Date.parse(at(20)));
    expect(t.bars).toHaveLength(1);
    expect(t.bars[0]).toMatchObject({ attempts: 2, state: "RUNNING", endMs: null });
    expect(t.criticalPath.wallSeconds).toBe(20);
  });
});
