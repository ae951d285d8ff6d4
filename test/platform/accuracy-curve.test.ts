/**
 * `Run.accuracyCurve` on the whole platform with a real worker: a tiny INCUBATION run whose
 * recipe scores every 5 steps. Every job's EVAL_POINT events are in the log and over GraphQL,
 * and the curve places them on the run's clocks with the jobs' stored wall times. Then
 * `incubator compare` on that run and an E2E run by their IDs (and by an ID and a results.json),
 * and its errors for IDs it cannot compare.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import type { AccuracyPoint } from "../../src/generated/graphql.ts";
import { useTestDatabase } from "../helpers/database.ts";
import type { SelectedEvent } from "../helpers/events.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import { spawnIncubator } from "../helpers/process.ts";
import {
  createTinyArchitectureAndDataset,
  mutate,
  runTinyToEnd,
  tinyOverrides,
} from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-curve-platform-"));
let local: LocalPlatform & { token: string };
/** The tiny architecture and dataset, and the INCUBATION run the first test trains. */
let ids: { architectureId: string; datasetId: string };
let incubationId: string;

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 1, threads: 1 });
}, 120_000);

afterAll(async () => {
  await local?.close();
});

/** What the queries below select: every field of the schema's AccuracyPoint. */
type Point = Required<Omit<AccuracyPoint, "__typename">>;

describe("Run.accuracyCurve", () => {
  it("holds every job's points on the critical-path and compute clocks", async () => {
    ids = await createTinyArchitectureAndDataset(local.api.url, "curve-tiny", 256);
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
    incubationId = toGlobalId("Run", run.id);
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

  it("is what `incubator compare` reads for run IDs, alone or beside a results.json", async () => {
    expect(incubationId, "the first test trains the INCUBATION run").toBeDefined();
    const e2e = await runTinyToEnd(
      local.api.url,
      {
        kind: "E2E",
        ...ids,
        seed: 4,
        overrides: { ...tinyOverrides({ e2e: 27 }), evalEvery: 5, evalSubset: 24 },
      },
      { timeoutMs: 240_000 },
    );
    const e2eId = toGlobalId("Run", e2e.id);
    const env = { INCUBATOR_API: local.api.url, INCUBATOR_TOKEN: local.token };
    const compare = async (args: string[], extraEnv: Record<string, string> = {}) => {
      const cli = spawnIncubator(["compare", ...args], { ...env, ...extraEnv });
      const code = await cli.exited;
      return { code, output: cli.output() };
    };
    const json = (output: string) => JSON.parse(output.slice(output.indexOf("{")));

    const res = await postGraphQL<{ node: { accuracy: number; accuracyCurve: Point[] } }>(
      local.api.url,
      `query ($id: ID!) { node(id: $id) { ... on Run { accuracy
        accuracyCurve { stage moduleIndex step jobSeconds criticalPathSeconds computeSeconds accuracy loss } } } }`,
      { id: e2eId },
    );
    const e2eRun = res.data!.node;
    const e2eWall = (
      (await t.db.job.findFirstOrThrow({ where: { runId: e2e.id } })).result as { wallSeconds: number }
    ).wallSeconds;

    // Both by ID, E2E given first: still the reference.
    const byIds = await compare([e2eId, incubationId, "--json"]);
    expect(byIds.code, byIds.output).toBe(0);
    const c = json(byIds.output);
    expect(c.reference).toMatchObject({ kind: "e2e", path: e2eId, accuracy: e2eRun.accuracy });
    expect(c.reference.criticalPathSeconds).toBeCloseTo(e2eWall, 9);
    expect(c.candidate).toMatchObject({ kind: "incubation", path: incubationId });
    const target = e2eRun.accuracyCurve.at(-1)!.accuracy;
    expect(c.targetAccuracy).toBe(target);
    const firstAt = (clock: "criticalPathSeconds" | "computeSeconds") =>
      Math.min(...e2eRun.accuracyCurve.filter((p) => p.accuracy >= target - 1e-9).map((p) => p[clock]));
    expect(
      c.speedUps.map((s: { clock: string; referenceSeconds: number }) => [s.clock, s.referenceSeconds]),
    ).toEqual([
      ["criticalPathSeconds", firstAt("criticalPathSeconds")],
      ["computeSeconds", firstAt("computeSeconds")],
    ]);

    // Mixed: the E2E run as a results.json written from what the API returned, the other by ID.
    const file = join(dataDir, "e2e-results.json");
    writeFileSync(
      file,
      JSON.stringify({
        kind: "e2e",
        accuracy: e2eRun.accuracy,
        criticalPathSeconds: e2eWall,
        accuracyCurve: e2eRun.accuracyCurve.map((p) => ({ ...p, stage: p.stage.toLowerCase() })),
      }),
    );
    const mixed = await compare([incubationId, file, "--json"]);
    expect(mixed.code, mixed.output).toBe(0);
    expect(json(mixed.output)).toEqual({ ...c, reference: { ...c.reference, path: file } });
    const text = await compare([incubationId, e2eId]);
    expect(text.code, text.output).toBe(0);
    expect(text.output).toMatch(/critical path\s+(\d+\.\d\d×|not reached)/);
  }, 300_000);

  it("says which argument `incubator compare` cannot use and how to fix it, without a stack", async () => {
    const start = (input: Record<string, unknown>) =>
      mutate<{ run: { id: string } }>(
        local.api.url,
        `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message } } }`,
        { kind: "E2E", ...ids, ...input },
      ).then((p) => p.run.id);
    // No worker has this label: its job waits (the run is QUEUED or RUNNING, never finished).
    const queued = await start({
      overrides: tinyOverrides({ e2e: 3 }),
      placement: [{ labels: ["site=nowhere"] }],
    });
    // Finished, but scored nothing on the way.
    const uncurved = await runTinyToEnd(
      local.api.url,
      { kind: "E2E", ...ids, overrides: { ...tinyOverrides({ e2e: 3 }), evalEvery: 0 } },
      { timeoutMs: 120_000 },
    );
    const env = { INCUBATOR_API: local.api.url, INCUBATOR_TOKEN: local.token };
    const cases: [string[], Record<string, string>, RegExp][] = [
      [[incubationId, toGlobalId("Run", randomUUID())], {}, /<b>: no run \S+ on .*check the ID/],
      [["no-such-file", incubationId], {}, /<a>: "no-such-file" is neither a file.*nor a run ID/],
      [
        [incubationId, queued],
        {},
        /<b>: run \S+ has not finished \((QUEUED|RUNNING)\); compare it once it has succeeded/,
      ],
      [
        [toGlobalId("Run", uncurved.id), incubationId],
        {},
        /<a>: run \S+ has no accuracy curve recorded; start it with overrides\.evalEvery > 0/,
      ],
      [
        [incubationId, incubationId],
        { INCUBATOR_TOKEN: "inc_at_bogus" },
        /<a>: run \S+: .*; give an API token .*--token/,
      ],
      [
        [incubationId, incubationId],
        { INCUBATOR_API: "http://127.0.0.1:1/graphql" },
        /<a>: run \S+: cannot reach the API at http:\/\/127\.0\.0\.1:1\/graphql .*incubator serve.*--api/,
      ],
      [
        [incubationId, incubationId],
        { INCUBATOR_API: "not a url" },
        /INCUBATOR_API: "not a url" is not a URL/,
      ],
    ];
    await Promise.all(
      cases.map(async ([args, extra, message]) => {
        const cli = spawnIncubator(["compare", ...args], { ...env, ...extra });
        expect(await cli.exited, cli.output()).toBe(1);
        expect(cli.output()).toMatch(message);
        expect(cli.output()).not.toMatch(/\n\s+at /);
      }),
    );
    await mutate(
      local.api.url,
      `mutation ($input: CancelRunInput!) { cancelRun(input: $input) { run { id } userErrors { message } } }`,
      { runId: queued },
    );
  }, 300_000);
});
