/**
 * The state machine as a table: every occurrence from every state it can meet, legal or not.
 * Legal rows name the states written, the jobs created and the event types appended; illegal
 * rows name the IllegalTransition's message. Pure: no database.
 */
import { describe, expect, it } from "vitest";
import type { JobState, ModuleState, RunKind, RunState } from "../../src/generated/prisma/enums.ts";
import {
  IllegalTransition,
  type Occurrence,
  type RunSnapshot,
  type Transition,
  transition,
} from "../../src/platform/state/machine.ts";

const RUN_STATES: RunState[] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const JOB_STATES: JobState[] = ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];
const MODULE_STATES: ModuleState[] = ["PENDING", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"];

function ids() {
  let n = 0;
  return () => `new-${++n}`;
}

/** An incubation run with two modules; `jobs` are given as [id, stage, state, moduleIndex?]. */
function snapshot(
  runState: RunState,
  opts: {
    kind?: RunKind;
    metaModelGiven?: boolean;
    modules?: ModuleState[];
    /** Indexes of modules reused from an earlier run (a reuse run). */
    reused?: number[];
    jobs?: [string, RunSnapshot["jobs"][number]["stage"], JobState, number?][];
  } = {},
): RunSnapshot {
  const modules = (opts.modules ?? ["PENDING", "PENDING"]).map((state, index) => ({
    id: `m${index}`,
    index,
    state,
    ...(opts.reused?.includes(index) ? { reused: true } : {}),
  }));
  return {
    run: { kind: opts.kind ?? "INCUBATION", state: runState, metaModelGiven: opts.metaModelGiven ?? false },
    modules: opts.kind === "INCUBATION" || opts.kind === undefined ? modules : [],
    jobs: (opts.jobs ?? []).map(([id, stage, state, moduleIndex]) => ({
      id,
      stage,
      state,
      moduleId: moduleIndex === undefined ? null : `m${moduleIndex}`,
    })),
  };
}

/** What a transition did, compactly: states written, stages created, event types. */
function summary(t: Transition) {
  return {
    run: t.run?.state ?? null,
    modules: Object.fromEntries(t.modules.map((m) => [m.id, m.state])),
    jobs: Object.fromEntries(t.jobs.map((j) => [j.id, j.state])),
    created: t.create.map((j) => (j.moduleIndex === null ? j.stage : `${j.stage}#${j.moduleIndex}`)),
    enqueued: t.enqueue.length,
    meta: t.recordMetaModelFrom,
    events: t.events.map((e) => e.type),
  };
}

const run = (s: RunSnapshot, o: Occurrence) => summary(transition(s, o, ids()));
const refused = (s: RunSnapshot, o: Occurrence) => () => transition(s, o, ids());

describe("RUN_STARTED", () => {
  it.each([
    ["INCUBATION", false, ["PRETRAIN"]],
    ["INCUBATION", true, ["MODULAR#0", "MODULAR#1"]],
    ["E2E", false, ["E2E"]],
    ["META_PRETRAIN", false, ["PRETRAIN"]],
  ] as const)("a QUEUED %s run (meta model given: %s) starts %j", (kind, metaModelGiven, created) => {
    const out = run(snapshot("QUEUED", { kind, metaModelGiven }), { type: "RUN_STARTED" });
    expect(out.run).toBe("RUNNING");
    expect(out.created).toEqual(created);
    expect(out.enqueued).toBe(created.length);
    expect(out.events[0]).toBe("RUN_STATE");
    expect(out.events.filter((e) => e === "JOB_STATE")).toHaveLength(created.length);
  });

  it.each([
    [[1], ["MODULAR#0"]],
    [[0], ["MODULAR#1"]],
    [[0, 1], ["FINETUNE"]],
  ] as const)("a reuse run reusing modules %j starts %j (no PRETRAIN)", (reused, created) => {
    const modules = [0, 1].map((i) => ((reused as readonly number[]).includes(i) ? "SUCCEEDED" : "PENDING"));
    const s = snapshot("QUEUED", { metaModelGiven: true, modules, reused: [...reused] });
    const out = run(s, { type: "RUN_STARTED" });
    expect(out.run).toBe("RUNNING");
    expect(out.created).toEqual(created);
    // The reused modules are not written: they stay SUCCEEDED.
    for (const i of reused) expect(out.modules[`m${i}`]).toBeUndefined();
  });

  it.each(RUN_STATES.filter((s) => s !== "QUEUED"))("is refused for a %s run", (state) => {
    expect(refused(snapshot(state), { type: "RUN_STARTED" })).toThrow(/only a QUEUED run starts/);
  });
});

describe("JOB_CLAIMED", () => {
  const claim: Occurrence = { type: "JOB_CLAIMED", jobId: "j", workerId: "w", attempt: 2 };
  it.each(JOB_STATES)("a %s job of a RUNNING run", (state) => {
    const s = snapshot("RUNNING", { modules: ["QUEUED", "QUEUED"], jobs: [["j", "MODULAR", state, 0]] });
    if (state === "QUEUED" || state === "RUNNING") {
      const out = run(s, claim);
      expect(out.jobs).toEqual({ j: "RUNNING" });
      expect(out.modules).toEqual({ m0: "RUNNING" });
      expect(out.events).toEqual(["JOB_STATE", "MODULE_STATE"]);
      const t = transition(s, claim, ids());
      expect(t.jobs[0]).toMatchObject({ attempt: 2, workerId: "w", error: null });
    } else {
      expect(refused(s, claim)).toThrow(/only a QUEUED or RUNNING job is claimed/);
    }
  });

  it.each(RUN_STATES.filter((s) => s !== "RUNNING"))("is refused when the run is %s", (state) => {
    const s = snapshot(state, { jobs: [["j", "PRETRAIN", "QUEUED"]] });
    expect(refused(s, claim)).toThrow(/its jobs are not claimed/);
  });

  it("is refused for a job of another run", () => {
    expect(refused(snapshot("RUNNING"), claim)).toThrow(/not a job of this run/);
  });
});

describe("JOB_SUCCEEDED", () => {
  const done = (jobId: string, accuracy: number | null = null): Occurrence => ({
    type: "JOB_SUCCEEDED",
    jobId,
    accuracy,
  });

  it("PRETRAIN of an incubation: records the meta model and starts every module", () => {
    const out = run(snapshot("RUNNING", { jobs: [["pt", "PRETRAIN", "RUNNING"]] }), done("pt"));
    expect(out).toMatchObject({
      run: null,
      jobs: { pt: "SUCCEEDED" },
      modules: { m0: "QUEUED", m1: "QUEUED" },
      created: ["MODULAR#0", "MODULAR#1"],
      meta: "pt",
    });
  });

  it("PRETRAIN of a META_PRETRAIN run: the run succeeds with the meta model", () => {
    const out = run(
      snapshot("RUNNING", { kind: "META_PRETRAIN", jobs: [["pt", "PRETRAIN", "RUNNING"]] }),
      done("pt"),
    );
    expect(out).toMatchObject({ run: "SUCCEEDED", created: [], meta: "pt" });
    expect(out.events.at(-1)).toBe("RUN_STATE");
  });

  it("the last MODULAR job creates exactly one FINETUNE; an earlier one creates nothing", () => {
    const jobs: [string, "MODULAR", JobState, number][] = [
      ["a", "MODULAR", "RUNNING", 0],
      ["b", "MODULAR", "RUNNING", 1],
    ];
    const first = run(snapshot("RUNNING", { modules: ["RUNNING", "RUNNING"], jobs }), done("a"));
    expect(first).toMatchObject({ modules: { m0: "SUCCEEDED" }, created: [] });
    const last = run(
      snapshot("RUNNING", {
        modules: ["SUCCEEDED", "RUNNING"],
        jobs: [["a", "MODULAR", "SUCCEEDED", 0], jobs[1]!],
      }),
      done("b"),
    );
    expect(last).toMatchObject({ modules: { m1: "SUCCEEDED" }, created: ["FINETUNE"], run: null });
    const again = run(
      snapshot("RUNNING", {
        modules: ["SUCCEEDED", "RUNNING"],
        jobs: [["a", "MODULAR", "SUCCEEDED", 0], jobs[1]!, ["ft", "FINETUNE", "QUEUED"]],
      }),
      done("b"),
    );
    expect(again.created).toEqual([]);
  });

  it("a reuse run: its retrained module's success, with the reused one SUCCEEDED, creates FINETUNE", () => {
    const s = snapshot("RUNNING", {
      metaModelGiven: true,
      modules: ["SUCCEEDED", "RUNNING"],
      reused: [0],
      jobs: [["b", "MODULAR", "RUNNING", 1]],
    });
    expect(run(s, done("b"))).toMatchObject({ modules: { m1: "SUCCEEDED" }, created: ["FINETUNE"] });
  });

  it.each(["FINETUNE", "E2E"] as const)("%s: the run succeeds with its accuracy, last event", (stage) => {
    const kind = stage === "E2E" ? "E2E" : "INCUBATION";
    const s = snapshot("RUNNING", { kind, jobs: [["f", stage, "RUNNING"]] });
    const t = transition(s, done("f", 0.875), ids());
    expect(t.run).toMatchObject({ state: "SUCCEEDED", resultFromJob: "f" });
    expect(t.events.at(-1)).toMatchObject({ type: "RUN_STATE", state: "SUCCEEDED", finalAccuracy: 0.875 });
  });

  it("a module finishing after its run FAILED keeps its result; the run does not move", () => {
    const s = snapshot("FAILED", {
      modules: ["FAILED", "RUNNING"],
      jobs: [
        ["a", "MODULAR", "FAILED", 0],
        ["b", "MODULAR", "RUNNING", 1],
      ],
    });
    expect(run(s, done("b"))).toMatchObject({ run: null, jobs: { b: "SUCCEEDED" }, created: [] });
  });

  it.each(JOB_STATES.filter((s) => s !== "RUNNING"))("is refused for a %s job", (state) => {
    const s = snapshot("RUNNING", { jobs: [["j", "E2E", state]], kind: "E2E" });
    expect(refused(s, done("j"))).toThrow(/only a RUNNING job succeeds/);
  });
});

describe("JOB_FAILED", () => {
  const fail = (retry: boolean): Occurrence => ({ type: "JOB_FAILED", jobId: "j", reason: "boom", retry });
  const s = () =>
    snapshot("RUNNING", { modules: ["RUNNING", "QUEUED"], jobs: [["j", "MODULAR", "RUNNING", 0]] });

  it("with a retry left: the job and its module go back to QUEUED, the run keeps running", () => {
    expect(run(s(), fail(true))).toMatchObject({
      run: null,
      jobs: { j: "QUEUED" },
      modules: { m0: "QUEUED" },
      events: ["JOB_STATE", "MODULE_STATE"],
    });
    expect(transition(s(), fail(true), ids()).events[0]).toMatchObject({ reason: "boom" });
  });

  it("final: the job, its module and the run fail, naming the module", () => {
    const t = transition(s(), fail(false), ids());
    expect(summary(t)).toMatchObject({ run: "FAILED", jobs: { j: "FAILED" }, modules: { m0: "FAILED" } });
    expect(t.run?.error).toBe("module 0 failed: boom");
    expect(t.events.at(-1)).toMatchObject({ type: "RUN_STATE", state: "FAILED" });
  });

  it("a final failure in an already FAILED run fails the job and module only", () => {
    const failed = snapshot("FAILED", {
      modules: ["RUNNING", "FAILED"],
      jobs: [["j", "MODULAR", "RUNNING", 0]],
    });
    expect(run(failed, fail(false))).toMatchObject({ run: null, jobs: { j: "FAILED" } });
  });

  it.each(JOB_STATES.filter((s) => s !== "RUNNING"))("is refused for a %s job", (state) => {
    const q = snapshot("RUNNING", { jobs: [["j", "MODULAR", state, 0]] });
    expect(refused(q, fail(true))).toThrow(/only a RUNNING job fails/);
  });
});

describe("RUN_CANCELLED", () => {
  it.each(["QUEUED", "RUNNING"] as const)(
    "a %s run: live jobs and modules are cancelled, the run last",
    (state) => {
      const s = snapshot(state, {
        modules: ["SUCCEEDED", "RUNNING"],
        jobs: [
          ["pt", "PRETRAIN", "SUCCEEDED"],
          ["a", "MODULAR", "SUCCEEDED", 0],
          ["b", "MODULAR", "RUNNING", 1],
        ],
      });
      const out = run(s, { type: "RUN_CANCELLED" });
      expect(out).toMatchObject({ run: "CANCELLED", jobs: { b: "CANCELLED" }, modules: { m1: "CANCELLED" } });
      expect(out.events.at(-1)).toBe("RUN_STATE");
    },
  );

  it.each(["SUCCEEDED", "FAILED", "CANCELLED"] as const)("is refused for a %s run", (state) => {
    expect(refused(snapshot(state), { type: "RUN_CANCELLED" })).toThrow(
      /only a QUEUED or RUNNING run is cancelled/,
    );
  });
});

describe("MODULE_RETRIED", () => {
  const retry: Occurrence = { type: "MODULE_RETRIED", moduleId: "m0" };
  it.each(MODULE_STATES)("a %s module of a FAILED run", (state) => {
    const s = snapshot("FAILED", { modules: [state, "SUCCEEDED"], jobs: [["j", "MODULAR", "FAILED", 0]] });
    if (state === "FAILED" || state === "CANCELLED") {
      const out = run(s, retry);
      expect(out).toMatchObject({
        run: "RUNNING",
        modules: { m0: "QUEUED" },
        jobs: { j: "QUEUED" },
        enqueued: 1,
      });
      expect(out.events).toEqual(["RUN_STATE", "MODULE_STATE", "JOB_STATE"]);
    } else {
      expect(refused(s, retry)).toThrow(/only a FAILED or CANCELLED module is retried/);
    }
  });

  it("in a RUNNING run the run state is not rewritten", () => {
    const s = snapshot("RUNNING", { modules: ["FAILED", "RUNNING"], jobs: [["j", "MODULAR", "FAILED", 0]] });
    expect(run(s, retry).run).toBeNull();
  });

  it("is refused for a module that never had a job", () => {
    expect(refused(snapshot("CANCELLED", { modules: ["CANCELLED", "CANCELLED"] }), retry)).toThrow(
      /no job to retry/,
    );
  });
});

describe("RUN_FAILED", () => {
  it.each(RUN_STATES)("a %s run", (state) => {
    const o: Occurrence = { type: "RUN_FAILED", reason: "no weights" };
    if (state === "QUEUED" || state === "RUNNING") expect(run(snapshot(state), o).run).toBe("FAILED");
    else expect(refused(snapshot(state), o)).toThrow(IllegalTransition);
  });
});
