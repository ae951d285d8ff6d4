/**
 * `Run.accuracyCurve` on the whole platform with a real worker: a tiny INCUBATION run whose
 * recipe scores every 5 steps. Every job's EVAL_POINT events are in the log and over GraphQL,
 * and the curve places them on the run's clocks with the jobs' stored wall times.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { useTestDatabase } from "../helpers/database.ts";
import type { SelectedEvent } from "../helpers/events.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { createTinyArchitectureAndDataset, runTinyToEnd, tinyOverrides } from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-curve-platform-"));
let local: LocalPlatform;

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 1, threads: 1 });
}, 120_000);

afterAll(async () => {
  await local?.close();
});

interface Point {
  stage: string;
  moduleIndex: number | null;
  step: number;
  jobSeconds: number;
  criticalPathSeconds: number;
  computeSeconds: number;
  accuracy: number;
  loss: number;
}

describe("Run.accuracyCurve", () => {
  it("holds every job's points on the critical-path and compute clocks", async () => {
    const ids = await createTinyArchitectureAndDataset(local.api.url, "curve-tiny", 256);
    const run = await runTinyToEnd(
      local.api.url,
      {
        kind: "INCUBATION",
        ...ids,
        seed: 4,
        overrides: {
          ...tinyOverrides({ pretrain: 10, modular: 10, finetune: 7 }),
          evalEvery: 5,
          evalSubset: 24,
        },
      },
      { timeoutMs: 240_000 },
    );
    const res = await postGraphQL<{
      node: {
        accuracyCurve: Point[];
        events: { pageInfo: { hasNextPage: boolean }; nodes: SelectedEvent[] };
      };
    }>(
      local.api.url,
      `query ($id: ID!) { node(id: $id) { ... on Run {
        accuracyCurve { stage moduleIndex step jobSeconds criticalPathSeconds computeSeconds accuracy loss }
        events(first: 500) { pageInfo { hasNextPage }
          nodes { type moduleIndex ... on EvaluationPoint { stage step seconds accuracy loss images } } } } } }`,
      { id: toGlobalId("Run", run.id) },
    );
    expect(res.errors).toBeUndefined();
    const { accuracyCurve: curve, events } = res.data!.node;
    expect(events.pageInfo.hasNextPage).toBe(false);

    // The typed events: one per point, with the job's stage and module.
    const points = events.nodes.filter((e) => e.type === "EVAL_POINT");
    expect(points.length).toBe(curve.length);
    for (const e of points) {
      expect(e).toMatchObject({ images: 24, seconds: expect.any(Number), accuracy: expect.any(Number) });
    }
    expect(
      points
        .filter((e) => e.stage === "MODULAR")
        .map((e) => e.moduleIndex)
        .sort(),
    ).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);

    const of = (stage: string, moduleIndex: number | null = null) =>
      curve.filter((p) => p.stage === stage && p.moduleIndex === moduleIndex);
    expect(of("PRETRAIN").map((p) => p.step)).toEqual([0, 5, 10]);
    for (const m of [0, 1, 2, 3]) expect(of("MODULAR", m).map((p) => p.step)).toEqual([0, 5, 10]);
    expect(of("FINETUNE").map((p) => p.step)).toEqual([0, 5, 7]);

    // The offsets come from the jobs' stored results.
    const jobs = await t.db.job.findMany({ where: { runId: run.id }, include: { module: true } });
    const wall = (stage: string, index?: number) =>
      (
        jobs.find((j) => j.stage === stage && (index === undefined || j.module?.index === index))!.result as {
          wallSeconds: number;
        }
      ).wallSeconds;
    const pt = wall("PRETRAIN");
    const mt = [0, 1, 2, 3].map((i) => wall("MODULAR", i));
    for (const p of of("PRETRAIN")) expect(p.criticalPathSeconds).toBe(p.jobSeconds);
    for (const p of of("MODULAR", 2)) expect(p.criticalPathSeconds).toBeCloseTo(pt + p.jobSeconds, 9);
    for (const p of of("FINETUNE")) {
      expect(p.criticalPathSeconds).toBeCloseTo(pt + Math.max(...mt) + p.jobSeconds, 9);
      expect(p.computeSeconds).toBeCloseTo(pt + mt.reduce((a, b) => a + b, 0) + p.jobSeconds, 9);
    }
    const cp = curve.map((p) => p.criticalPathSeconds);
    expect(cp).toEqual([...cp].sort((a, b) => a - b));
  }, 300_000);
});
