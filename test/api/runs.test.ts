import { describe, expect, it } from "vitest";
import { fromGlobalId, toGlobalId } from "../../src/api/global-id.ts";
import type { Prisma } from "../../src/generated/prisma/client.ts";
import { modularSpec } from "../../src/platform/dispatch/plan.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import { metaModelConfig } from "../../src/platform/meta-model-source.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent } from "../helpers/events.ts";
import { collectSubscription, postGraphQL, wsClient } from "../helpers/graphql.ts";
import {
  createSmallArchitecture,
  recordingDispatcher,
  registerSmallDataset,
  START_RUN,
  type UserErrorShape,
  unique,
  useApiServer,
} from "./support.ts";

const t = useTestDatabase();
const dispatcher = recordingDispatcher();
const api = useApiServer(t, { dispatcher });

interface RunShape {
  id: string;
  kind: string;
  state: string;
  decentralized: boolean;
  modules: {
    id: string;
    index: number;
    blockStart: number;
    blockEnd: number;
    state: string;
    shard: number | null;
  }[];
  metaModel: { id: string } | null;
}
type StartPayload = { startRun: { run: RunShape | null; userErrors: UserErrorShape[] } };

const architecture = (input: Record<string, unknown> = {}) => createSmallArchitecture(api.gql, input);
const dataset = (spec: Record<string, unknown> = {}) => registerSmallDataset(api.gql, spec);

async function metaModel(
  data: Partial<{
    width: number;
    heads: number;
    patchSize: number;
    imageSize: number;
    numModules: number;
    datasetId: string;
    sourceRunId: string;
    checkpointId: string;
  }> = {},
) {
  const row = await t.db.metaModel.create({
    data: {
      name: unique("meta"),
      width: 32,
      heads: 2,
      patchSize: 4,
      imageSize: 16,
      numModules: 4,
      numClasses: 10,
      ...data,
    },
  });
  return { row, id: toGlobalId("MetaModel", row.id) };
}

async function startRun(input: Record<string, unknown>) {
  return (await api.gql<StartPayload>(START_RUN, { input })).startRun;
}

describe("startRun", () => {
  it("creates a QUEUED run with one module row per module and hands it to the dispatcher", async () => {
    const archId = await architecture({ moduleSplit: [2, 1, 1, 2] });
    const dataId = await dataset();
    const meta = await metaModel();
    const { run, userErrors } = await startRun({
      kind: "INCUBATION",
      architectureId: archId,
      datasetId: dataId,
      metaModelId: meta.id,
      overrides: { batchSize: 16, steps: { modular: 5 } },
      decentralized: true,
      priority: 3,
      seed: 7,
    });
    expect(userErrors).toEqual([]);
    expect(run).toMatchObject({
      kind: "INCUBATION",
      state: "QUEUED",
      recipe: "deit",
      overrides: { batchSize: 16, steps: { modular: 5 } },
      decentralized: true,
      priority: 3,
      seed: 7,
      architecture: { id: archId },
      dataset: { id: dataId },
      metaModel: { id: meta.id },
    });
    expect(
      run!.modules.map(({ index, blockStart, blockEnd, state, shard }) => [
        index,
        blockStart,
        blockEnd,
        state,
        shard,
      ]),
    ).toEqual([
      [0, 0, 2, "PENDING", 0],
      [1, 2, 3, "PENDING", 1],
      [2, 3, 4, "PENDING", 2],
      [3, 4, 6, "PENDING", 3],
    ]);
    const runId = Buffer.from(run!.id, "base64url").toString().split(":")[1]!;
    expect(dispatcher.calls).toContainEqual({ method: "runCreated", id: runId });
    expect(await t.db.module.count({ where: { runId } })).toBe(4);
  });

  it("stores the placement the run's jobs require", async () => {
    const { run, userErrors } = await startRun({
      kind: "INCUBATION",
      architectureId: await architecture(),
      datasetId: await dataset(),
      placement: [{ moduleIndex: 1, labels: ["site=b", "gpu=h100"] }, { labels: ["zone=eu"] }],
    });
    expect(userErrors).toEqual([]);
    const row = await t.db.run.findUniqueOrThrow({
      where: { id: Buffer.from(run!.id, "base64url").toString().split(":")[1]! },
    });
    expect(row.placement).toEqual([
      { moduleIndex: 1, labels: ["gpu=h100", "site=b"] },
      { labels: ["zone=eu"] },
    ]);
  });

  it("creates no modules for an E2E run, and no shards when not decentralised", async () => {
    const e2e = await startRun({
      kind: "E2E",
      architectureId: await architecture(),
      datasetId: await dataset(),
    });
    expect(e2e.userErrors).toEqual([]);
    expect(e2e.run!.modules).toEqual([]);
    const central = await startRun({
      kind: "INCUBATION",
      architectureId: await architecture(),
      datasetId: await dataset(),
    });
    expect(central.run!.modules.map((m) => m.shard)).toEqual([null, null, null, null]);
  });

  it("reports bad input as user errors naming the field, and creates nothing", async () => {
    const archId = await architecture();
    const dataId = await dataset();
    const runsBefore = await t.db.run.count();
    const callsBefore = dispatcher.calls.length;
    const fields = async (input: Record<string, unknown>) => {
      const { run, userErrors } = await startRun({
        kind: "INCUBATION",
        architectureId: archId,
        datasetId: dataId,
        ...input,
      });
      expect(run).toBeNull();
      return userErrors.map((e) => [e.field?.join("."), e.code]);
    };
    expect(
      await fields({ architectureId: toGlobalId("Architecture", "00000000-0000-0000-0000-000000000000") }),
    ).toEqual([["input.architectureId", "NOT_FOUND"]]);
    expect(await fields({ datasetId: archId })).toEqual([["input.datasetId", "NOT_FOUND"]]);
    expect(await fields({ metaModelId: "garbage" })).toEqual([["input.metaModelId", "NOT_FOUND"]]);
    expect(await fields({ recipe: "resnet" })).toEqual([["input.recipe", "INVALID"]]);
    expect(await fields({ overrides: { batchSize: 0 } })).toEqual([["input.overrides.batchSize", "INVALID"]]);
    expect(await fields({ overrides: { steps: { modular: -1 } } })).toEqual([
      ["input.overrides.steps.modular", "INVALID"],
    ]);
    expect(await fields({ overrides: { recomputeActivations: "yes" } })).toEqual([
      ["input.overrides.recomputeActivations", "INVALID"],
    ]);
    expect(await fields({ overrides: [1, 2] })).toEqual([["input.overrides", "INVALID"]]);
    expect(await fields({ seed: -1 })).toEqual([["input.seed", "INVALID"]]);
    expect(await fields({ kind: "E2E", decentralized: true })).toEqual([["input.decentralized", "INVALID"]]);
    expect(await fields({ datasetId: await dataset({ numClasses: 20 }) })).toEqual([
      ["input.datasetId", "INCOMPATIBLE"],
    ]);
    // meta model: heads, patch and image size must match; one block per module
    expect(await fields({ metaModelId: (await metaModel({ heads: 4 })).id })).toEqual([
      ["input.metaModelId", "INCOMPATIBLE"],
    ]);
    expect(await fields({ metaModelId: (await metaModel({ patchSize: 8 })).id })).toEqual([
      ["input.metaModelId", "INCOMPATIBLE"],
    ]);
    const wrongK = await startRun({
      kind: "INCUBATION",
      architectureId: archId,
      datasetId: dataId,
      metaModelId: (await metaModel({ numModules: 3 })).id,
    });
    expect(wrongK.userErrors).toMatchObject([
      {
        field: ["input", "metaModelId"],
        code: "INCOMPATIBLE",
        message: expect.stringMatching(/3 blocks.*4 modules/),
      },
    ]);
    expect(await fields({ kind: "E2E", metaModelId: (await metaModel()).id })).toEqual([
      ["input.metaModelId", "INVALID"],
    ]);
    expect(
      await fields({
        placement: [
          { moduleIndex: 4, labels: ["site=a"] },
          { labels: ["site a"] },
          { moduleIndex: 0, labels: [] },
        ],
      }),
    ).toEqual([
      ["input.placement.0.moduleIndex", "INVALID"],
      ["input.placement.1.labels.0", "INVALID"],
      ["input.placement.2.labels", "INVALID"],
    ]);
    expect(await t.db.run.count()).toBe(runsBefore);
    expect(dispatcher.calls.length).toBe(callsBefore);
  });
});

describe("cancelRun and retryModule", () => {
  it("ask the dispatcher, and refuse finished runs and modules that did not fail", async () => {
    const { run } = await startRun({
      kind: "INCUBATION",
      architectureId: await architecture(),
      datasetId: await dataset(),
    });
    const runId = Buffer.from(run!.id, "base64url").toString().split(":")[1]!;
    const CANCEL = `mutation ($id: ID!) { cancelRun(input: { runId: $id }) { run { id state } userErrors { field code message } } }`;
    const RETRY = `mutation ($id: ID!) { retryModule(input: { moduleId: $id }) { module { id state } userErrors { field code message } } }`;
    type Cancel = { cancelRun: { run: { id: string } | null; userErrors: UserErrorShape[] } };
    type Retry = { retryModule: { module: { id: string } | null; userErrors: UserErrorShape[] } };

    const cancelled = await api.gql<Cancel>(CANCEL, { id: run!.id });
    expect(cancelled.cancelRun).toMatchObject({ run: { id: run!.id }, userErrors: [] });
    expect(dispatcher.calls.at(-1)).toEqual({ method: "cancelRun", id: runId });

    await t.db.run.update({ where: { id: runId }, data: { state: "SUCCEEDED" } });
    const again = await api.gql<Cancel>(CANCEL, { id: run!.id });
    expect(again.cancelRun.userErrors).toMatchObject([{ field: ["input", "runId"], code: "RUN_FINISHED" }]);
    const missing = await api.gql<Cancel>(CANCEL, {
      id: toGlobalId("Run", "00000000-0000-0000-0000-000000000000"),
    });
    expect(missing.cancelRun).toMatchObject({
      run: null,
      userErrors: [{ field: ["input", "runId"], code: "NOT_FOUND" }],
    });

    const module = run!.modules[1]!;
    const pending = await api.gql<Retry>(RETRY, { id: module.id });
    expect(pending.retryModule.userErrors).toMatchObject([
      { field: ["input", "moduleId"], code: "NOT_RETRYABLE" },
    ]);
    const moduleId = Buffer.from(module.id, "base64url").toString().split(":")[1]!;
    await t.db.module.update({ where: { id: moduleId }, data: { state: "FAILED" } });
    const retried = await api.gql<Retry>(RETRY, { id: module.id });
    expect(retried.retryModule).toMatchObject({ module: { id: module.id }, userErrors: [] });
    expect(dispatcher.calls.at(-1)).toEqual({ method: "retryModule", id: moduleId });
  });
});

describe("runs", () => {
  it("pages newest first and filters by state", async () => {
    const archId = await architecture();
    const dataId = await dataset();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await startRun({ kind: "E2E", architectureId: archId, datasetId: dataId, seed: i })).run!.id);
    }
    const QUERY = `query ($first: Int, $after: String) {
      architecture(id: "${archId}") { runs(first: $first, after: $after) {
        totalCount nodes { id seed } pageInfo { hasNextPage endCursor } } }
    }`;
    type Page = {
      architecture: {
        runs: {
          totalCount: number;
          nodes: { id: string }[];
          pageInfo: { hasNextPage: boolean; endCursor: string };
        };
      };
    };
    const one = (await api.gql<Page>(QUERY, { first: 2 })).architecture.runs;
    expect(one).toMatchObject({ totalCount: 5, pageInfo: { hasNextPage: true } });
    const two = (await api.gql<Page>(QUERY, { first: 2, after: one.pageInfo.endCursor })).architecture.runs;
    const three = (await api.gql<Page>(QUERY, { first: 2, after: two.pageInfo.endCursor })).architecture.runs;
    expect(three.pageInfo.hasNextPage).toBe(false);
    expect([...one.nodes, ...two.nodes, ...three.nodes].map((r) => r.id)).toEqual([...ids].reverse());

    const runId = Buffer.from(ids[2]!, "base64url").toString().split(":")[1]!;
    await t.db.run.update({ where: { id: runId }, data: { state: "FAILED", error: "boom" } });
    const failed = await api.gql<{ runs: { nodes: { id: string; error: string }[] } }>(
      "{ runs(first: 100, state: FAILED) { nodes { id error } } }",
    );
    expect(failed.runs.nodes).toEqual([{ id: ids[2], error: "boom" }]);
  });
});

describe("run details", () => {
  it("derives stages from jobs, module progress from events, and pages the event log", async () => {
    const { run } = await startRun({
      kind: "INCUBATION",
      architectureId: await architecture(),
      datasetId: await dataset(),
    });
    const runId = Buffer.from(run!.id, "base64url").toString().split(":")[1]!;
    const modules = await t.db.module.findMany({ where: { runId }, orderBy: { index: "asc" } });
    const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    await t.db.job.create({
      data: {
        runId,
        stage: "PRETRAIN",
        state: "SUCCEEDED",
        attempts: 1,
        startedAt: at(0),
        finishedAt: at(10),
      },
    });
    for (const m of modules) {
      await t.db.job.create({
        data: {
          runId,
          moduleId: m.id,
          stage: "MODULAR",
          state: m.index === 0 ? "FAILED" : m.index === 1 ? "RUNNING" : "QUEUED",
          attempts: 1,
          ...(m.index <= 1 ? { startedAt: at(11 + m.index) } : {}),
        },
      });
    }
    await t.db.job.create({
      data: { runId, moduleId: modules[0]!.id, stage: "MODULAR", state: "SUCCEEDED", attempts: 2 },
    });
    await appendRunEvents(t.db, runId, [
      progressEvent(1, 1, { totalSteps: 10, loss: 2.5, lr: 0.001 }),
      progressEvent(2, 1, { totalSteps: 10, loss: 2.4, imagesPerSecond: 300, etaSeconds: 3 }),
      { type: "LOG", moduleIndex: 1, level: "INFO", message: "hello" },
      progressEvent(1, 2, { totalSteps: 10, loss: 2.25, lr: 0.002, imagesPerSecond: 512.5, etaSeconds: 8 }),
    ]);

    type Details = {
      run: {
        stages: {
          kind: string;
          state: string;
          jobs: { id: string }[];
          startedAt: string | null;
          finishedAt: string | null;
        }[];
        modules: { index: number; attempts: number; progress: Record<string, unknown> | null }[];
        events: {
          totalCount: number;
          edges: { cursor: string; node: { seq: number; type: string; moduleIndex: number } }[];
          pageInfo: { hasNextPage: boolean; endCursor: string };
        };
      };
    };
    const QUERY = `query ($id: ID!, $after: String) { run(id: $id) {
      stages { kind state jobs { id } startedAt finishedAt }
      modules { index attempts progress { step totalSteps loss lr imagesPerSecond etaSeconds seq at } }
      events(first: 3, after: $after) { totalCount edges { cursor node { seq type moduleIndex } } pageInfo { hasNextPage endCursor } }
    } }`;
    const { run: details } = await api.gql<Details>(QUERY, { id: run!.id });
    expect(details.stages.map((s) => [s.kind, s.state, s.jobs.length])).toEqual([
      ["PRETRAIN", "SUCCEEDED", 1],
      ["MODULAR", "RUNNING", 5], // module 0 failed once, then succeeded on its retry job
    ]);
    expect(details.stages[0]).toMatchObject({
      startedAt: at(0).toISOString(),
      finishedAt: at(10).toISOString(),
    });
    expect(details.stages[1]!.finishedAt).toBeNull();
    expect(details.modules.map((m) => m.attempts)).toEqual([3, 1, 1, 1]);
    expect(details.modules[0]!.progress).toBeNull();
    expect(details.modules[1]!.progress).toMatchObject({
      step: 2,
      totalSteps: 10,
      loss: 2.25,
      lr: 0.002,
      imagesPerSecond: 512.5,
      etaSeconds: 8,
      seq: 4,
    });
    expect(details.modules[2]!.progress).toMatchObject({ step: 1, loss: 2.4, imagesPerSecond: 300, seq: 2 });
    expect(details.events.totalCount).toBe(4);
    expect(details.events.edges.map((e) => e.node.seq)).toEqual([1, 2, 3]);
    expect(details.events.pageInfo.hasNextPage).toBe(true);
    const { run: rest } = await api.gql<Details>(QUERY, {
      id: run!.id,
      after: details.events.pageInfo.endCursor,
    });
    expect(rest.events.edges.map((e) => e.node)).toEqual([{ seq: 4, type: "PROGRESS", moduleIndex: 1 }]);
    expect(rest.events.pageInfo.hasNextPage).toBe(false);

    const module1 = await api.gql<{ run: { events: { nodes: { seq: number }[] } } }>(
      `query ($id: ID!) { run(id: $id) { events(afterSeq: 1, moduleIndex: 1) { nodes { seq } } } }`,
      { id: run!.id },
    );
    expect(module1.run.events.nodes.map((e) => e.seq)).toEqual([3, 4]);
  });
});

describe("lineage", () => {
  it("follows a module to its meta model, shard, checkpoints and the assembled and final models", async () => {
    const archId = await architecture({ moduleSplit: [2, 2, 2] });
    const dataId = await dataset();
    const arch = Buffer.from(archId, "base64url").toString().split(":")[1]!;
    const data = Buffer.from(dataId, "base64url").toString().split(":")[1]!;
    // A META_PRETRAIN run that produced the meta model, whose weights are an artifact of it.
    const pretrain = await t.db.run.create({
      data: { kind: "META_PRETRAIN", state: "SUCCEEDED", architectureId: arch, datasetId: data },
    });
    const metaWeights = await t.db.artifact.create({
      data: { runId: pretrain.id, kind: "META_WEIGHTS", sha256: "a".repeat(64), sizeBytes: 1234n },
    });
    const { row: meta } = await metaModel({
      numModules: 3,
      datasetId: data,
      sourceRunId: pretrain.id,
      checkpointId: metaWeights.id,
    });
    const { run } = await startRun({
      kind: "INCUBATION",
      architectureId: archId,
      datasetId: dataId,
      metaModelId: toGlobalId("MetaModel", meta.id),
      decentralized: true,
    });
    const runId = Buffer.from(run!.id, "base64url").toString().split(":")[1]!;
    const modules = await t.db.module.findMany({ where: { runId }, orderBy: { index: "asc" } });
    const checkpoints: string[][] = [];
    for (const m of modules) {
      const job = await t.db.job.create({
        data: { runId, moduleId: m.id, stage: "MODULAR", state: "SUCCEEDED" },
      });
      const ids: string[] = [];
      for (const step of [100, 200]) {
        const a = await t.db.artifact.create({
          data: {
            runId,
            jobId: job.id,
            kind: "CHECKPOINT",
            step,
            sha256: `${m.index}${step}`.padEnd(64, "0"),
            sizeBytes: 5_000_000_000n,
          },
        });
        ids.push(toGlobalId("Artifact", a.id));
      }
      await t.db.artifact.create({
        data: { runId, jobId: job.id, kind: "WEIGHTS", sha256: "b".repeat(64), sizeBytes: 10n },
      });
      checkpoints.push(ids);
    }
    const assembleJob = await t.db.job.create({ data: { runId, stage: "ASSEMBLE", state: "SUCCEEDED" } });
    const assembled = await t.db.artifact.create({
      data: { runId, jobId: assembleJob.id, kind: "ASSEMBLED_MODEL", sha256: "c".repeat(64), sizeBytes: 99n },
    });
    const finetune = await t.db.job.create({ data: { runId, stage: "FINETUNE", state: "SUCCEEDED" } });
    await t.db.artifact.create({
      data: { runId, jobId: finetune.id, kind: "FINAL_WEIGHTS", sha256: "d".repeat(64), sizeBytes: 98n },
    });
    const onnx = await t.db.artifact.create({
      data: { runId, jobId: finetune.id, kind: "FINAL_MODEL_ONNX", sha256: "e".repeat(64), sizeBytes: 97n },
    });

    type Lineage = {
      run: {
        modules: {
          id: string;
          lineage: {
            module: { id: string };
            run: { id: string };
            shard: number;
            metaModel: {
              id: string;
              numModules: number;
              dataset: { id: string };
              sourceRun: { id: string; kind: string; producedMetaModel: { id: string } };
              checkpoint: { kind: string; sizeBytes: number; downloadUrl: string };
            };
            checkpoints: {
              id: string;
              step: number;
              sizeBytes: number;
              module: { id: string };
              job: { stage: string };
            }[];
            assembledInto: { id: string; assembledFrom: { index: number }[] };
          };
        }[];
        finalModel: {
          id: string;
          kind: string;
          downloadUrl: string;
          assembledFrom: { id: string; index: number }[];
        };
        artifacts: { id: string }[];
      };
    };
    const { run: r } = await api.gql<Lineage>(
      `query ($id: ID!) { run(id: $id) {
        modules { id lineage {
          module { id } run { id } shard
          metaModel { id numModules dataset { id } sourceRun { id kind producedMetaModel { id } }
            checkpoint { kind sizeBytes downloadUrl } }
          checkpoints { id step sizeBytes module { id } job { stage } }
          assembledInto { id assembledFrom { index } }
        } }
        finalModel { id kind downloadUrl assembledFrom { id index } }
        artifacts(kind: CHECKPOINT) { id }
      } }`,
      { id: run!.id },
    );
    const metaId = toGlobalId("MetaModel", meta.id);
    r.modules.forEach((m, i) => {
      expect(m.lineage.module.id).toBe(m.id);
      expect(m.lineage.run.id).toBe(run!.id);
      expect(m.lineage.shard).toBe(i);
      expect(m.lineage.metaModel).toEqual({
        id: metaId,
        numModules: 3,
        dataset: { id: dataId },
        sourceRun: {
          id: toGlobalId("Run", pretrain.id),
          kind: "META_PRETRAIN",
          producedMetaModel: { id: metaId },
        },
        checkpoint: { kind: "META_WEIGHTS", sizeBytes: 1234, downloadUrl: `/artifacts/${"a".repeat(64)}` },
      });
      expect(m.lineage.checkpoints.map((c) => c.id)).toEqual(checkpoints[i]);
      expect(m.lineage.checkpoints.map((c) => [c.step, c.sizeBytes, c.module.id, c.job.stage])).toEqual([
        [100, 5_000_000_000, m.id, "MODULAR"],
        [200, 5_000_000_000, m.id, "MODULAR"],
      ]);
      expect(m.lineage.assembledInto).toEqual({
        id: toGlobalId("Artifact", assembled.id),
        assembledFrom: [{ index: 0 }, { index: 1 }, { index: 2 }],
      });
    });
    expect(r.finalModel).toEqual({
      id: toGlobalId("Artifact", onnx.id),
      kind: "FINAL_MODEL_ONNX",
      downloadUrl: `/artifacts/${"e".repeat(64)}`,
      assembledFrom: r.modules.map((m, index) => ({ id: m.id, index })),
    });
    expect(r.artifacts).toHaveLength(6);
  });
});

describe("node(id:) and nodes(ids:)", () => {
  it("round-trips every node type and returns null for missing objects", async () => {
    const { run } = await startRun({
      kind: "INCUBATION",
      architectureId: await architecture(),
      datasetId: await dataset(),
    });
    const runId = Buffer.from(run!.id, "base64url").toString().split(":")[1]!;
    const module = await t.db.module.findFirstOrThrow({ where: { runId } });
    const job = await t.db.job.create({ data: { runId, moduleId: module.id, stage: "MODULAR" } });
    const artifact = await t.db.artifact.create({
      data: { runId, jobId: job.id, kind: "CHECKPOINT", sha256: "f".repeat(64), sizeBytes: 1n },
    });
    const meta = await metaModel();
    const ids: [string, string][] = [
      ["Run", run!.id],
      ["Module", toGlobalId("Module", module.id)],
      ["Job", toGlobalId("Job", job.id)],
      ["Artifact", toGlobalId("Artifact", artifact.id)],
      ["MetaModel", meta.id],
      ["Architecture", await architecture()],
      ["Dataset", await dataset()],
    ];
    for (const [type, id] of ids) {
      const res = await api.gql<{ node: { __typename: string; id: string } }>(
        "query ($id: ID!) { node(id: $id) { __typename id } }",
        { id },
      );
      expect(res.node).toEqual({ __typename: type, id });
    }
    const missing = toGlobalId("Run", "00000000-0000-0000-0000-000000000000");
    const many = await api.gql<{ nodes: ({ __typename: string; id: string } | null)[] }>(
      "query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
      { ids: [...ids.map(([, id]) => id), missing] },
    );
    expect(many.nodes).toEqual([...ids.map(([type, id]) => ({ __typename: type, id })), null]);

    const bad = await postGraphQL(api.server.url, '{ node(id: "not-an-id") { id } }');
    expect(bad.errors?.[0]).toMatchObject({ extensions: { code: "BAD_USER_INPUT", argument: "id" } });
    const wrongType = await postGraphQL(api.server.url, "query ($id: ID!) { run(id: $id) { id } }", {
      id: toGlobalId("Module", module.id),
    });
    expect(wrongType.errors?.[0]?.message).toMatch(/id: .* is not the ID of a Run/);
  });
});

describe("query depth limit", () => {
  /** run(id:) { modules { run { modules { … id } } } } with `levels` fields on the deepest path. */
  const deep = (levels: number) => {
    let body = "id";
    for (let i = levels - 1; i >= 1; i--) {
      body = `${i === 1 ? "run(id: $id)" : i % 2 === 1 ? "run" : "modules"} { ${body} }`;
    }
    return `query ($id: ID!) { ${body} }`;
  };

  it("accepts 12 levels and refuses 13 over HTTP and WebSocket, before running anything", async () => {
    const { run } = await startRun({
      kind: "INCUBATION",
      architectureId: await architecture(),
      datasetId: await dataset(),
    });
    const ok = await postGraphQL(api.server.url, deep(12), { id: run!.id });
    expect(ok.errors).toBeUndefined();
    const tooDeep = await postGraphQL(api.server.url, deep(13), { id: run!.id });
    expect(tooDeep.data).toBeUndefined();
    expect(tooDeep.errors?.[0]?.message).toMatch(/13 levels deep; the limit is 12/);
    expect(tooDeep.errors?.[0]?.extensions).toMatchObject({
      code: "GRAPHQL_VALIDATION_FAILED",
      limit: "depth",
      depth: 13,
      maxDepth: 12,
    });

    // fragments count where they are spread
    const viaFragment = `query ($id: ID!) { run(id: $id) { ...M } }
      fragment M on Run { modules { run { modules { run { modules { run { modules { run { modules { run { modules { id } } } } } } } } } } } }`;
    const fragmentErrors = (await postGraphQL(api.server.url, viaFragment, { id: run!.id })).errors;
    expect(fragmentErrors?.[0]?.message).toMatch(/13 levels deep/);

    // introspection (GraphiQL's ofType chains) is exempt
    const introspection = `{ __schema { types { fields { type { ${"ofType { ".repeat(10)}name ${"} ".repeat(14)}}`;
    expect((await postGraphQL(api.server.url, introspection)).errors).toBeUndefined();

    const client = wsClient(api.server.wsUrl);
    try {
      const { results, error } = await collectSubscription(client, deep(13), { id: run!.id });
      const errors = (error as { message: string }[] | undefined) ?? results[0]?.errors;
      expect(errors).toMatchObject([
        {
          message: expect.stringMatching(/13 levels deep/),
          extensions: { code: "GRAPHQL_VALIDATION_FAILED" },
        },
      ]);
    } finally {
      await client.dispose();
    }
  });
});

describe("meta models of another width", () => {
  const COMPAT = `query ($id: ID!, $arch: ID!) { node(id: $id) { ... on MetaModel {
    compatibleWith(architectureId: $arch) { compatible reasons metaWidth targetWidth needsAdapters } } } }`;

  it("are compatible through width adapters; heads, patch and K must still match", async () => {
    const arch = await architecture(); // width 32, heads 2, patch 4, 16 px, 4 modules
    const narrow = await metaModel({ width: 16 });
    const res = await api.gql<{ node: { compatibleWith: Record<string, unknown> } }>(COMPAT, {
      id: narrow.id,
      arch,
    });
    expect(res.node.compatibleWith).toEqual({
      compatible: true,
      reasons: [],
      metaWidth: 16,
      targetWidth: 32,
      needsAdapters: true,
    });
    const started = await startRun({
      kind: "INCUBATION",
      architectureId: arch,
      datasetId: await dataset(),
      metaModelId: narrow.id,
    });
    expect(started.userErrors).toEqual([]);

    const wrong = await metaModel({ heads: 4, patchSize: 8 });
    const refused = await api.gql<{ node: { compatibleWith: Record<string, unknown> } }>(COMPAT, {
      id: wrong.id,
      arch,
    });
    expect(refused.node.compatibleWith).toMatchObject({
      compatible: false,
      reasons: [
        "meta model heads (4) differs from the target's (2)",
        "meta model patchSize (8) differs from the target's (4)",
      ],
      needsAdapters: false,
    });
    const bad = await postGraphQL(api.server.url, COMPAT, { id: narrow.id, arch: narrow.id });
    expect(bad.errors?.[0]?.message).toMatch(/architectureId/);
  });

  it("a module's lineage shows the meta model's width and the adapters it trains with", async () => {
    const arch = await architecture();
    const narrow = await metaModel({ width: 16 });
    const { run } = await startRun({
      kind: "INCUBATION",
      architectureId: arch,
      datasetId: await dataset(),
      metaModelId: narrow.id,
    });
    // What the dispatcher would write for each module's MT job (the recording dispatcher makes none).
    const row = await t.db.run.findUniqueOrThrow({
      where: { id: fromGlobalId("Run", run!.id, "id") },
      include: { architecture: true, dataset: true, modules: { orderBy: { index: "asc" } }, metaModel: true },
    });
    const ctx = { run: row, architecture: row.architecture, dataset: row.dataset };
    const metaCfg = metaModelConfig(row.metaModel!);
    for (const m of row.modules) {
      await t.db.job.create({
        data: {
          runId: row.id,
          moduleId: m.id,
          stage: "MODULAR",
          spec: modularSpec(ctx, m.index, "0".repeat(64), metaCfg) as unknown as Prisma.InputJsonValue,
        },
      });
    }
    const res = await api.gql<{
      node: { modules: { index: number; lineage: { metaModel: { width: number }; adapters: unknown[] } }[] };
    }>(
      `query ($id: ID!) { node(id: $id) { ... on Run { modules { index lineage {
        metaModel { width } adapters { name inWidth outWidth } } } } } }`,
      { id: run!.id },
    );
    const lineage = res.node.modules.map((m) => m.lineage);
    expect(lineage.every((l) => l.metaModel.width === 16)).toBe(true);
    expect(lineage.map((l) => l.adapters)).toEqual([
      [{ name: "adapters.out", inWidth: 32, outWidth: 16 }],
      [
        { name: "adapters.in", inWidth: 16, outWidth: 32 },
        { name: "adapters.out", inWidth: 32, outWidth: 16 },
      ],
      [
        { name: "adapters.in", inWidth: 16, outWidth: 32 },
        { name: "adapters.out", inWidth: 32, outWidth: 16 },
      ],
      [{ name: "adapters.in", inWidth: 16, outWidth: 32 }],
    ]);
  });
});
