/**
 * startRun `split: BALANCED | AUTO`: the split planner measures the architecture on this machine,
 * the run keeps its own split (module rows, job specs) and `Run.splitPlan` shows the prediction,
 * then each MT job's measured seconds once it succeeded. Requests the planner cannot serve are
 * userErrors on `split`, refused before anything is measured.
 */
import { describe, expect, it } from "vitest";
import { fromGlobalId } from "../../src/api/global-id.ts";
import { baseSpec } from "../../src/platform/dispatch/plan.ts";
import { useTestDatabase } from "../helpers/database.ts";
import {
  createSmallArchitecture,
  recordingDispatcher,
  registerSmallDataset,
  type UserErrorShape,
  useApiServer,
} from "./support.ts";

const t = useTestDatabase();
const api = useApiServer(t, { dispatcher: recordingDispatcher() });

const START = `mutation ($input: StartRunInput!) {
  startRun(input: $input) {
    run { id
      modules { index blockStart blockEnd }
      splitPlan { split predictedSeconds predictedPretrainSeconds evenSplit evenPredictedSeconds measuredSeconds } }
    userErrors { field message code }
  }
}`;

interface PlanShape {
  split: number[];
  predictedSeconds: number[];
  predictedPretrainSeconds: number | null;
  evenSplit: number[];
  evenPredictedSeconds: number[];
  measuredSeconds: (number | null)[];
}
interface Started {
  startRun: {
    run: {
      id: string;
      modules: { index: number; blockStart: number; blockEnd: number }[];
      splitPlan: PlanShape | null;
    } | null;
    userErrors: UserErrorShape[];
  };
}

async function fixtures() {
  return {
    architectureId: await createSmallArchitecture(api.gql, { modules: 3 }),
    datasetId: await registerSmallDataset(api.gql),
  };
}

const SMALL = { batchSize: 8, steps: { pretrain: 10, modular: 20, finetune: 10 } };

describe("startRun with a planned split", () => {
  it("BALANCED keeps the architecture's K, stores the planned split and shows the plan", async () => {
    const ids = await fixtures();
    const res = await api.gql<Started>(START, {
      input: { kind: "INCUBATION", ...ids, overrides: SMALL, split: "BALANCED" },
    });
    expect(res.startRun.userErrors).toEqual([]);
    const run = res.startRun.run!;
    const plan = run.splitPlan!;
    expect(plan.split).toHaveLength(3);
    expect(plan.split.reduce((a, b) => a + b, 0)).toBe(6);
    expect(plan.evenSplit).toEqual([2, 2, 2]);
    expect(plan.predictedSeconds.every((s) => s > 0)).toBe(true);
    expect(Math.max(...plan.predictedSeconds)).toBeLessThanOrEqual(Math.max(...plan.evenPredictedSeconds));
    expect(plan.measuredSeconds).toEqual([null, null, null]);
    // The module rows and the jobs' specs follow the run's split, not the architecture's.
    expect(run.modules.map((m) => m.blockEnd - m.blockStart)).toEqual(plan.split);
    const runId = fromGlobalId("Run", run.id, "id");
    const row = await t.db.run.findUniqueOrThrow({
      where: { id: runId },
      include: { architecture: true, dataset: true },
    });
    expect(row.moduleSplit).toEqual(plan.split);
    expect(baseSpec({ run: row, architecture: row.architecture, dataset: row.dataset }).split).toEqual(
      plan.split,
    );

    // A module's succeeded MT job gives its measured seconds.
    const module = await t.db.module.findFirstOrThrow({ where: { runId, index: 1 } });
    await t.db.job.create({
      data: {
        runId,
        moduleId: module.id,
        stage: "MODULAR",
        state: "SUCCEEDED",
        result: { wallSeconds: 3.5 },
      },
    });
    const read = await api.gql<{ node: { splitPlan: PlanShape } }>(
      `query ($id: ID!) { node(id: $id) { ... on Run { splitPlan { split predictedSeconds predictedPretrainSeconds evenSplit evenPredictedSeconds measuredSeconds } } } }`,
      { id: run.id },
    );
    expect(read.node.splitPlan.measuredSeconds).toEqual([null, 3.5, null]);
  }, 120_000);

  it("AUTO chooses K too; an ARCHITECTURE run has no plan", async () => {
    const ids = await fixtures();
    const auto = await api.gql<Started>(START, {
      input: { kind: "INCUBATION", ...ids, overrides: SMALL, split: "AUTO" },
    });
    expect(auto.startRun.userErrors).toEqual([]);
    const plan = auto.startRun.run!.splitPlan!;
    expect(plan.split.length).toBeGreaterThanOrEqual(2);
    expect(plan.split.length).toBeLessThanOrEqual(6);
    expect(plan.predictedPretrainSeconds).toBeGreaterThan(0);
    expect(auto.startRun.run!.modules).toHaveLength(plan.split.length);

    const fixed = await api.gql<Started>(START, { input: { kind: "INCUBATION", ...ids, overrides: SMALL } });
    expect(fixed.startRun.run!.splitPlan).toBeNull();
    expect(fixed.startRun.run!.modules.map((m) => m.blockEnd - m.blockStart)).toEqual([2, 2, 2]);
  }, 120_000);

  it("refuses what a planned split cannot go with, on the split field", async () => {
    const ids = await fixtures();
    const e2e = await api.gql<Started>(START, { input: { kind: "E2E", ...ids, split: "BALANCED" } });
    expect(e2e.startRun.userErrors).toEqual([
      {
        field: ["input", "split"],
        message: "a E2E run has no modules to plan; leave split out",
        code: "INVALID",
      },
    ]);
    const placed = await api.gql<Started>(START, {
      input: {
        kind: "INCUBATION",
        ...ids,
        split: "AUTO",
        placement: [{ moduleIndex: 0, labels: ["site=a"] }],
      },
    });
    expect(placed.startRun.userErrors.map((e) => e.field)).toEqual([["input", "split"]]);
    expect(placed.startRun.userErrors[0]!.message).toMatch(/^AUTO chooses K/);
    expect(placed.startRun.run).toBeNull();
  });
});
