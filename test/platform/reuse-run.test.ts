/**
 * Runs that reuse finished modules (startRun `reuseModulesFrom` / `retrain`): on the whole
 * platform with a real worker, a source INCUBATION run, then a run that retrains only module 2
 * with another learning rate. The untouched modules are the source's bytes (same artifact row,
 * same sha256, same bytes through GET /artifacts); the retrained one differs; the run fine-tunes
 * to a final model without pre-training. Then every refusal, each with its message.
 */
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import type { LocalPlatform } from "../../src/cli/local-platform.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { authHeaders, postGraphQL } from "../helpers/graphql.ts";
import { startTestPlatform } from "../helpers/platform.ts";
import {
  createTinyArchitectureAndDataset,
  mutate,
  runTinyToEnd,
  TINY_VIT,
  tinyOverrides,
} from "../helpers/tiny-run.ts";

const t = useTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), "incubator-reuse-"));
let local: LocalPlatform & { token: string };
let ids: { architectureId: string; datasetId: string };
let sourceId: string;

const STEPS = { pretrain: 10, modular: 10, finetune: 10 };

beforeAll(async () => {
  local = await startTestPlatform(t, dataDir, { workers: 1, threads: 1 });
  ids = await createTinyArchitectureAndDataset(local.api.url, "reuse-tiny", 256);
  const source = await runTinyToEnd(
    local.api.url,
    { kind: "INCUBATION", ...ids, seed: 1, overrides: tinyOverrides(STEPS) },
    { timeoutMs: 240_000 },
  );
  sourceId = toGlobalId("Run", source.id);
}, 300_000);

afterAll(async () => {
  await local?.close();
});

type Weights = { id: string; sha256: string } | null;
interface RunView {
  state: string;
  reusedFrom: { id: string } | null;
  metaModel: { id: string } | null;
  producedMetaModel: { id: string } | null;
  jobs: { stage: string }[];
  artifacts: { kind: string; sha256: string }[];
  modules: {
    id: string;
    index: number;
    state: string;
    weights: Weights;
    reusedFrom: { id: string } | null;
    lineage: { reusedFrom: { id: string } | null; trainedIn: { id: string } };
  }[];
}

async function view(runId: string): Promise<RunView> {
  const res = await postGraphQL<{ node: RunView }>(
    local.api.url,
    `query ($id: ID!) { node(id: $id) { ... on Run { state reusedFrom { id } metaModel { id }
      producedMetaModel { id } jobs { stage } artifacts { kind sha256 }
      modules { id index state weights { id sha256 } reusedFrom { id }
        lineage { reusedFrom { id } trainedIn { id } } } } } }`,
    { id: runId },
  );
  expect(res.errors).toBeUndefined();
  return res.data!.node;
}

async function bytesOf(sha256: string): Promise<Buffer> {
  const res = await fetch(`${local.api.url.replace(/\/graphql$/, "")}/artifacts/${sha256}`, {
    headers: authHeaders(local.api.url),
  });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** startRun's userErrors for `input` (the run must be refused). */
async function refusal(input: Record<string, unknown>, token?: string) {
  const res = await postGraphQL<{
    startRun: { run: unknown; userErrors: { field: string[]; message: string; code: string }[] };
  }>(
    local.api.url,
    `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { field message code } } }`,
    { input },
    ...(token ? [{ token }] : []),
  );
  expect(res.errors).toBeUndefined();
  expect(res.data!.startRun.run).toBeNull();
  return res.data!.startRun.userErrors;
}

describe("a run that reuses finished modules", () => {
  it("retrains only module 2; modules 0, 1, 3 are the source's bytes; it fine-tunes to a final model", async () => {
    const reuse = await runTinyToEnd(
      local.api.url,
      {
        kind: "INCUBATION",
        ...ids,
        seed: 1,
        reuseModulesFrom: sourceId,
        retrain: [2],
        // The sweep: module 2 again with another learning rate.
        overrides: { ...tinyOverrides(STEPS), baseLr: 0.003 },
      },
      { timeoutMs: 240_000 },
    );
    const source = await view(sourceId);
    const run = await view(toGlobalId("Run", reuse.id));
    expect(run.state).toBe("SUCCEEDED");
    expect(run.reusedFrom).toEqual({ id: sourceId });
    // The source's meta model, no pre-training: one MODULAR job (module 2), then FINETUNE.
    expect(run.metaModel).toEqual(source.producedMetaModel);
    expect(run.jobs.map((j) => j.stage).sort()).toEqual(["FINETUNE", "MODULAR"]);
    expect(run.artifacts.map((a) => a.kind)).toEqual(
      expect.arrayContaining(["ASSEMBLED_MODEL", "FINAL_WEIGHTS", "FINAL_MODEL_ONNX"]),
    );
    // The fine-tune assembled from every module's weights: the reused ones are the source's.
    const finetune = await t.db.job.findFirstOrThrow({ where: { runId: reuse.id, stage: "FINETUNE" } });
    const spec = JSON.stringify(finetune.spec);
    for (const m of run.modules) expect(spec).toContain(m.weights!.sha256);

    for (const index of [0, 1, 3]) {
      const ours = run.modules[index]!;
      const theirs = source.modules[index]!;
      expect(ours.state).toBe("SUCCEEDED");
      // The very artifact row: no copy.
      expect(ours.weights).toEqual(theirs.weights);
      expect(ours.reusedFrom).toEqual({ id: theirs.id });
      expect(ours.lineage).toEqual({ reusedFrom: { id: theirs.id }, trainedIn: { id: sourceId } });
      const bytes = await bytesOf(ours.weights!.sha256);
      expect(sha(bytes)).toBe(theirs.weights!.sha256);
      expect(bytes.equals(await bytesOf(theirs.weights!.sha256))).toBe(true);
    }
    const retrained = run.modules[2]!;
    expect(retrained.reusedFrom).toBeNull();
    expect(retrained.lineage.trainedIn).toEqual({ id: toGlobalId("Run", reuse.id) });
    expect(retrained.weights!.sha256).not.toBe(source.modules[2]!.weights!.sha256);
    expect(sha(await bytesOf(retrained.weights!.sha256))).toBe(retrained.weights!.sha256);
  }, 300_000);

  it("with retrain empty, reuses every module: no MODULAR job, only FINETUNE", async () => {
    const reuse = await runTinyToEnd(
      local.api.url,
      { kind: "INCUBATION", ...ids, reuseModulesFrom: sourceId, overrides: tinyOverrides(STEPS) },
      { timeoutMs: 240_000 },
    );
    const run = await view(toGlobalId("Run", reuse.id));
    expect(run.jobs.map((j) => j.stage)).toEqual(["FINETUNE"]);
    expect(run.modules.every((m) => m.reusedFrom !== null)).toBe(true);
  }, 300_000);
});

describe("a source run that did not finish", () => {
  it("lends its finished modules; an unfinished one must be retrained", async () => {
    // Module 3 waits for a worker labelled site=nowhere (there is none); the others train.
    const source = await view(sourceId);
    const { run } = await mutate<{ run: { id: string } }>(
      local.api.url,
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { message } } }`,
      {
        kind: "INCUBATION",
        ...ids,
        metaModelId: source.producedMetaModel!.id,
        placement: [{ moduleIndex: 3, labels: ["site=nowhere"] }],
        overrides: tinyOverrides(STEPS),
      },
    );
    const deadline = Date.now() + 240_000;
    while ((await view(run.id)).modules.filter((m) => m.state === "SUCCEEDED").length < 3) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 500));
    }
    await mutate(
      local.api.url,
      `mutation ($input: CancelRunInput!) { cancelRun(input: $input) { run { id } userErrors { message } } }`,
      { runId: run.id },
    );
    const input = { kind: "INCUBATION", ...ids, reuseModulesFrom: run.id, overrides: tinyOverrides(STEPS) };
    expect(await refusal(input)).toEqual([
      {
        field: ["input", "reuseModulesFrom"],
        code: "INVALID",
        message:
          "module 3 of the source run is CANCELLED (the run is CANCELLED) and has no weights to reuse; " +
          "retrain it (retrain: [3]) or reuse a run whose modules finished",
      },
    ]);
    const reuse = await runTinyToEnd(local.api.url, { ...input, retrain: [3] }, { timeoutMs: 240_000 });
    expect((await view(toGlobalId("Run", reuse.id))).jobs.map((j) => j.stage).sort()).toEqual([
      "FINETUNE",
      "MODULAR",
    ]);
  }, 300_000);
});

describe("reuse refusals say what differs", () => {
  const base = () => ({
    kind: "INCUBATION",
    ...ids,
    reuseModulesFrom: sourceId,
    overrides: tinyOverrides(STEPS),
  });

  /** The tiny architecture with `changes`; its global ID. */
  const architecture = async (name: string, changes: Record<string, unknown>) =>
    (
      await mutate<{ architecture: { id: string } }>(
        local.api.url,
        `mutation ($input: CreateArchitectureInput!) { createArchitecture(input: $input) { architecture { id } userErrors { message } } }`,
        { name, ...TINY_VIT, modules: 4, ...changes },
      )
    ).architecture.id;

  it("another architecture shape", async () => {
    const errors = await refusal({
      ...base(),
      architectureId: await architecture("reuse-wide", { width: 64 }),
    });
    expect(errors).toEqual([
      {
        field: ["input", "architectureId"],
        code: "MISMATCH",
        message: 'architecture "reuse-wide" ≠ the source run\'s "reuse-tiny": width 64 ≠ 32',
      },
    ]);
  });

  it("another split of the same shape", async () => {
    const split = await architecture("reuse-split", { moduleSplit: [2, 1, 1], modules: null });
    const errors = await refusal({ ...base(), architectureId: split });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ field: ["input", "architectureId"], code: "MISMATCH" });
    expect(errors[0]!.message).toMatch(
      /^split ≠ the source run's: blocks \[0-2, 2-3, 3-4\] \(3 modules\) ≠ \[0-1, 1-2, 2-3, 3-4\] \(4 modules\)/,
    );
  });

  it("another meta model; a source that is not an INCUBATION run", async () => {
    const meta = await runTinyToEnd(
      local.api.url,
      { kind: "META_PRETRAIN", ...ids, overrides: tinyOverrides({ pretrain: 4 }) },
      { timeoutMs: 240_000 },
    );
    const metaRun = await view(toGlobalId("Run", meta.id));
    const source = await view(sourceId);
    const errors = await refusal({ ...base(), metaModelId: metaRun.producedMetaModel!.id });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ field: ["input", "metaModelId"], code: "MISMATCH" });
    expect(errors[0]!.message).toMatch(
      /^meta model "meta-[0-9a-f]{8}" ≠ the source run's "meta-[0-9a-f]{8}"/,
    );
    // The source's own meta model is no mismatch (refused here only for the bad index).
    const same = await refusal({ ...base(), metaModelId: source.producedMetaModel!.id, retrain: [9] });
    expect(same.map((e) => e.field)).toEqual([["input", "retrain", "0"]]);

    expect(await refusal({ ...base(), reuseModulesFrom: toGlobalId("Run", meta.id) })).toEqual([
      {
        field: ["input", "reuseModulesFrom"],
        code: "MISMATCH",
        message: "the source run is META_PRETRAIN; only an INCUBATION run's modules can be reused",
      },
    ]);
  }, 300_000);

  it("bad retrain indexes; retrain without a source; reuse in an E2E run", async () => {
    expect(await refusal({ ...base(), retrain: [4, 1, 1] })).toEqual([
      {
        field: ["input", "retrain", "0"],
        code: "INVALID",
        message: "retrain[0]: module 4 does not exist; the architecture has modules 0 to 3",
      },
      { field: ["input", "retrain", "2"], code: "INVALID", message: "retrain[2]: module 1 is listed twice" },
    ]);
    const { reuseModulesFrom: _, ...noSource } = base();
    expect((await refusal({ ...noSource, retrain: [1] }))[0]!.field).toEqual(["input", "retrain"]);
    expect(await refusal({ ...base(), kind: "E2E" })).toEqual([
      {
        field: ["input", "reuseModulesFrom"],
        code: "INVALID",
        message: "a E2E run has no modules to reuse; use kind INCUBATION",
      },
    ]);
  });

  it("a source whose pre-training never finished has nothing to reuse", async () => {
    const { run } = await mutate<{ run: { id: string } }>(
      local.api.url,
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id } userErrors { message } } }`,
      {
        kind: "INCUBATION",
        ...ids,
        overrides: tinyOverrides({ pretrain: 100_000, modular: 10, finetune: 10 }),
      },
    );
    await mutate(
      local.api.url,
      `mutation ($input: CancelRunInput!) { cancelRun(input: $input) { run { id } userErrors { message } } }`,
      { runId: run.id },
    );
    expect(await refusal({ ...base(), reuseModulesFrom: run.id })).toEqual([
      {
        field: ["input", "reuseModulesFrom"],
        code: "INVALID",
        message:
          "the source run has no meta model (its pre-training did not finish); reuse a run whose modules trained",
      },
    ]);
  });

  it("a source in another project: WRONG_PROJECT, or not found for a token that does not reach it", async () => {
    const { project } = await mutate<{ project: { id: string } }>(
      local.api.url,
      `mutation ($input: CreateProjectInput!) { createProject(input: $input) { project { id } userErrors { message } } }`,
      { name: "reuse-other" },
    );
    const errors = await refusal({ ...base(), projectId: project.id });
    expect(errors).toContainEqual({
      field: ["input", "reuseModulesFrom"],
      code: "WRONG_PROJECT",
      message: "the source run belongs to another project than this one; reuse a run of the same project",
    });
    const rawProject = Buffer.from(project.id, "base64url").toString().split(":")[1]!;
    const outsider = await mintToken(t.db, "OPERATOR", { projects: [rawProject] });
    const hidden = await refusal(base(), outsider);
    expect(hidden).toContainEqual({
      field: ["input", "reuseModulesFrom"],
      code: "NOT_FOUND",
      message: `no Run with ID ${sourceId}`,
    });
  });
});
