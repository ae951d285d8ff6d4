/**
 * Projects as a caller meets them, with real tokens over HTTP: where each create goes (its
 * `projectId`, or the token's one project), names unique per project (a name taken elsewhere is
 * not revealed), a project the token lacks answered exactly like one that does not exist,
 * startRun refusing inputs of another project, and the artifact quota per project (operator
 * uploads, registered weights counted once per content hash).
 */
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeGlobalId, toGlobalId } from "../../src/api/global-id.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { SOURCE_VIT, timmVitTensors, writeTimmCheckpoint } from "../helpers/timm-vit.ts";
import { recordingDispatcher, type UserErrorShape, unique, useApiServer } from "./support.ts";

const t = useTestDatabase();
const dir = mkdtempSync(join(tmpdir(), "incubator-projects-"));
const store = new LocalArtifactStore(join(dir, "artifacts"));
const api = useApiServer(t, { dispatcher: recordingDispatcher(), artifacts: store });

/** Projects by name → id, and tokens limited to them. */
const project: Record<string, string> = {};
const tokens: Record<string, string> = {};
/** A meta model checkpoint (K = 4 blocks) and a 6-block "pre-trained" ViT, as timm names them. */
const metaPath = writeTimmCheckpoint(
  join(dir, "meta.safetensors"),
  timmVitTensors({ ...SOURCE_VIT, depth: 4 }),
);
const sourcePath = writeTimmCheckpoint(join(dir, "source.safetensors"), timmVitTensors());

beforeAll(async () => {
  for (const name of ["alpha", "beta", "gamma", "delta", "tiny"])
    project[name] = (await t.db.project.create({ data: { name } })).id;
  const limited = async (role: "OPERATOR" | "ADMIN", ...names: string[]) =>
    mintToken(t.db, role, { projects: names.map((n) => project[n]!) });
  tokens.alpha = await limited("OPERATOR", "alpha");
  tokens.beta = await limited("OPERATOR", "beta");
  tokens.alphaBeta = await limited("OPERATOR", "alpha", "beta");
  tokens.gamma = await limited("OPERATOR", "gamma");
  tokens.delta = await limited("OPERATOR", "delta");
  tokens.tiny = await limited("OPERATOR", "tiny");
});

const projectId = (name: string) => toGlobalId("Project", project[name]!);

type Payload = { userErrors: UserErrorShape[] } & Record<string, { id: string } | null | UserErrorShape[]>;

/** One create mutation, its input without `projectId`, and the table its row lands in. */
interface Create {
  name: string;
  input: () => Record<string, unknown>;
  rowProject: (id: string) => Promise<string>;
}

const CREATES: Create[] = [
  {
    name: "createArchitecture",
    input: () => ({
      name: unique("arch"),
      imageSize: 16,
      patchSize: 4,
      width: 32,
      depth: 4,
      heads: 4,
      numClasses: 10,
    }),
    rowProject: async (id) => (await t.db.architecture.findUniqueOrThrow({ where: { id } })).projectId,
  },
  {
    name: "registerDataset",
    input: () => ({
      name: unique("data"),
      spec: { format: "synthetic", numClasses: 10, channels: 3, imageSize: 16, length: 20 },
    }),
    rowProject: async (id) => (await t.db.dataset.findUniqueOrThrow({ where: { id } })).projectId,
  },
  {
    name: "registerMetaModel",
    input: () => ({ name: unique("meta"), weightsPath: metaPath, heads: 4 }),
    rowProject: async (id) => (await t.db.metaModel.findUniqueOrThrow({ where: { id } })).projectId,
  },
  {
    name: "importMetaModel",
    input: () => ({ name: unique("imported"), path: sourcePath, heads: 4, modules: 4 }),
    rowProject: async (id) => (await t.db.metaModel.findUniqueOrThrow({ where: { id } })).projectId,
  },
];

const INPUT_TYPE: Record<string, string> = {
  createArchitecture: "CreateArchitectureInput",
  registerDataset: "RegisterDatasetInput",
  registerMetaModel: "RegisterMetaModelInput",
  importMetaModel: "ImportMetaModelInput",
  startRun: "StartRunInput",
};
/** The payload field of each mutation's object, and its type (for its global ID). */
const OBJECT: Record<string, [field: string, type: string]> = {
  createArchitecture: ["architecture", "Architecture"],
  registerDataset: ["dataset", "Dataset"],
  registerMetaModel: ["metaModel", "MetaModel"],
  importMetaModel: ["metaModel", "MetaModel"],
  startRun: ["run", "Run"],
};

/** Call a create mutation as `token`: its userErrors and the new row's database id (or null). */
async function create(mutation: string, input: Record<string, unknown>, token: string) {
  const [field, type] = OBJECT[mutation]!;
  const query = `mutation ($input: ${INPUT_TYPE[mutation]}!) { ${mutation}(input: $input) {
    ${field} { id } userErrors { field message code } } }`;
  const res = await postGraphQL<Record<string, Payload>>(api.server.url, query, { input }, { token });
  expect(res.errors).toBeUndefined();
  const payload = res.data![mutation]!;
  const row = payload[field] as { id: string } | null;
  return { userErrors: payload.userErrors, id: row ? decodeGlobalId(type, row.id) : null };
}

/** An architecture and a dataset in `name`'s project (its own token), for startRun. */
async function runInputs(name: string) {
  const arch = await create("createArchitecture", CREATES[0]!.input(), tokens[name]!);
  const data = await create("registerDataset", CREATES[1]!.input(), tokens[name]!);
  return {
    architectureId: toGlobalId("Architecture", arch.id!),
    datasetId: toGlobalId("Dataset", data.id!),
  };
}

describe("where a create goes", () => {
  it("a token of one project: there, when projectId is omitted", async () => {
    for (const c of CREATES) {
      const made = await create(c.name, c.input(), tokens.alpha!);
      expect(made.userErrors, c.name).toEqual([]);
      expect(await c.rowProject(made.id!), c.name).toBe(project.alpha);
    }
    const inputs = await runInputs("alpha");
    const run = await create("startRun", { kind: "E2E", ...inputs }, tokens.alpha!);
    expect(run.userErrors).toEqual([]);
    expect((await t.db.run.findUniqueOrThrow({ where: { id: run.id! } })).projectId).toBe(project.alpha);
  });

  it("a token of several projects must name one (REQUIRED on projectId), and may", async () => {
    const inputs = await runInputs("beta");
    const all: [string, () => Record<string, unknown>][] = [
      ...CREATES.map((c): [string, () => Record<string, unknown>] => [c.name, c.input]),
      ["startRun", () => ({ kind: "E2E", ...inputs })],
    ];
    for (const [name, input] of all) {
      const refused = await create(name, input(), tokens.alphaBeta!);
      expect(refused.id, name).toBeNull();
      expect(refused.userErrors, name).toContainEqual({
        field: ["input", "projectId"],
        code: "REQUIRED",
        message: expect.stringMatching(/several projects \(alpha, beta\): name one with projectId/),
      });
      const named = await create(name, { ...input(), projectId: projectId("beta") }, tokens.alphaBeta!);
      expect(named.userErrors, name).toEqual([]);
    }
    const arch = await create("createArchitecture", CREATES[0]!.input(), tokens.alphaBeta!);
    expect(arch.id).toBeNull();
  });

  it("a project the token lacks is answered like one that does not exist, and nothing is created", async () => {
    const inputs = await runInputs("alpha");
    const counts = async () =>
      Promise.all([
        t.db.architecture.count(),
        t.db.dataset.count(),
        t.db.metaModel.count(),
        t.db.run.count(),
      ]);
    const before = await counts();
    const nowhere = toGlobalId("Project", randomUUID());
    const all: [string, Record<string, unknown>][] = [
      ...CREATES.map((c): [string, Record<string, unknown>] => [c.name, c.input()]),
      ["startRun", { kind: "E2E", ...inputs }],
    ];
    for (const [name, input] of all) {
      const other = await create(name, { ...input, projectId: projectId("beta") }, tokens.alpha!);
      const missing = await create(name, { ...input, projectId: nowhere }, tokens.alpha!);
      const shape = (errors: UserErrorShape[], id: string) =>
        errors.map((e) => ({ ...e, message: e.message.replace(id, "<id>") }));
      expect(shape(other.userErrors, projectId("beta")), name).toEqual(shape(missing.userErrors, nowhere));
      expect(other.userErrors, name).toContainEqual(
        expect.objectContaining({ field: ["input", "projectId"], code: "NOT_FOUND" }),
      );
    }
    expect(await counts()).toEqual(before);
  });
});

describe("names", () => {
  it("are unique per project: a name taken in another project is free here, and not revealed", async () => {
    for (const c of CREATES.slice(0, 3)) {
      const input = c.input();
      expect((await create(c.name, input, tokens.alpha!)).userErrors, c.name).toEqual([]);
      // The same name in beta: created, so nothing tells beta that alpha has one.
      expect((await create(c.name, input, tokens.beta!)).userErrors, c.name).toEqual([]);
      const again = await create(c.name, input, tokens.beta!);
      expect(again.userErrors, c.name).toEqual([
        {
          field: ["input", "name"],
          code: "TAKEN",
          message: expect.stringMatching(/already exists in this project$/),
        },
      ]);
    }
  });
});

describe("startRun", () => {
  it("refuses an architecture, dataset or meta model of another project, naming the field", async () => {
    const alpha = await runInputs("alpha");
    const beta = await runInputs("beta");
    const meta = await create("registerMetaModel", CREATES[2]!.input(), tokens.beta!);
    // An admin of every project sees both; the run goes to alpha.
    const admin = api.token;
    const mixed = await create(
      "startRun",
      {
        kind: "INCUBATION",
        projectId: projectId("alpha"),
        architectureId: alpha.architectureId,
        datasetId: beta.datasetId,
        metaModelId: toGlobalId("MetaModel", meta.id!),
      },
      admin,
    );
    expect(mixed.id).toBeNull();
    const wrong = mixed.userErrors.filter((e) => e.code === "WRONG_PROJECT").map((e) => e.field);
    expect(wrong).toEqual([
      ["input", "datasetId"],
      ["input", "metaModelId"],
    ]);
    // Its own project's inputs: fine.
    const ok = await create("startRun", { kind: "E2E", projectId: projectId("beta"), ...beta }, admin);
    expect(ok.userErrors).toEqual([]);
    // A token of alpha cannot even see beta's dataset.
    const blind = await create(
      "startRun",
      { kind: "E2E", ...alpha, datasetId: beta.datasetId },
      tokens.alpha!,
    );
    expect(blind.userErrors).toContainEqual(
      expect.objectContaining({ field: ["input", "datasetId"], code: "NOT_FOUND" }),
    );
  });
});

describe("the artifact quota", () => {
  const base = () => api.server.url.replace(/\/graphql$/, "");
  const sha = (bytes: Buffer | string) => createHash("sha256").update(bytes).digest("hex");
  const put = (body: Buffer | string, token: string, query = "") =>
    fetch(`${base()}/artifacts/${sha(body)}${query}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
      body,
    });
  const usage = async (token: string) => {
    const res = await postGraphQL<{
      projects: { name: string; artifactUsageBytes: number; artifactQuotaBytes: number }[];
    }>(api.server.url, "{ projects { name artifactUsageBytes artifactQuotaBytes } }", {}, { token });
    expect(res.errors).toBeUndefined();
    return res.data!.projects[0]!;
  };

  it("counts an operator's uploads once per content hash and refuses one past the quota (413, usage and limit)", async () => {
    await t.db.project.update({ where: { id: project.gamma! }, data: { artifactQuotaBytes: 100n } });
    const first = "a".repeat(60);
    expect((await put(first, tokens.gamma!)).status).toBe(201);
    expect(await usage(tokens.gamma!)).toEqual({
      name: "gamma",
      artifactUsageBytes: 60,
      artifactQuotaBytes: 100,
    });
    // The same bytes again: already held, nothing more counted.
    const again = await put(first, tokens.gamma!);
    expect(again.status).toBe(200);
    expect((await usage(tokens.gamma!)).artifactUsageBytes).toBe(60);

    const second = "b".repeat(60);
    const refused = await put(second, tokens.gamma!);
    expect(refused.status).toBe(413);
    const body = (await refused.json()) as Record<string, unknown>;
    expect(body).toMatchObject({
      code: "ARTIFACT_QUOTA_EXCEEDED",
      usageBytes: 60,
      addBytes: 60,
      quotaBytes: 100,
      error: expect.stringContaining('project "gamma" would exceed its artifact quota'),
    });
    expect(await store.has(sha(second))).toBe(false);
    expect((await usage(tokens.gamma!)).artifactUsageBytes).toBe(60);

    // Downloads stay with the project's tokens: another project's token gets 404.
    const get = (token: string) =>
      fetch(`${base()}/artifacts/${sha(first)}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get(tokens.gamma!)).status).toBe(200);
    expect((await get(tokens.beta!)).status).toBe(404);
  });

  it("names the project of an upload like a create: several projects must say which; others' are not found", async () => {
    const bytes = `upload-${randomUUID()}`;
    const several = await put(bytes, tokens.alphaBeta!);
    expect(several.status).toBe(400);
    expect(await several.json()).toMatchObject({ code: "PROJECT_REQUIRED" });
    const lacking = await put(bytes, tokens.alpha!, `?project=${projectId("beta")}`);
    const missing = await put(bytes, tokens.alpha!, `?project=${toGlobalId("Project", randomUUID())}`);
    expect([lacking.status, missing.status]).toEqual([404, 404]);
    const codes = [(await lacking.json()) as { code: string }, (await missing.json()) as { code: string }];
    expect(codes.map((c) => c.code)).toEqual(["NOT_FOUND", "NOT_FOUND"]);
    expect((await put(bytes, tokens.alphaBeta!, `?project=${projectId("beta")}`)).status).toBe(201);
    expect(await t.db.artifact.count({ where: { sha256: sha(bytes), projectId: project.beta! } })).toBe(1);
  });

  it("counts registered weights that were uploaded once, and refuses registering past the quota", async () => {
    const weights = readFileSync(metaPath);
    await t.db.project.update({
      where: { id: project.delta! },
      data: { artifactQuotaBytes: BigInt(weights.length + 10) },
    });
    // The shared store holds these bytes for other projects already; the answer does not say so.
    const uploaded = await put(weights, tokens.delta!);
    expect(uploaded.status).toBe(201);
    expect(await uploaded.json()).toMatchObject({ stored: true, sizeBytes: weights.length });
    expect((await usage(tokens.delta!)).artifactUsageBytes).toBe(weights.length);
    const registered = await create(
      "registerMetaModel",
      { name: unique("meta"), weightsSha256: sha(weights), heads: 4 },
      tokens.delta!,
    );
    expect(registered.userErrors).toEqual([]);
    expect((await usage(tokens.delta!)).artifactUsageBytes).toBe(weights.length);
    // Not uploaded into gamma (which holds no copy of these bytes): not found there.
    const foreign = await create(
      "registerMetaModel",
      { name: unique("meta"), weightsSha256: sha(weights), heads: 4 },
      tokens.gamma!,
    );
    expect(foreign.userErrors).toMatchObject([{ field: ["input", "weightsSha256"], code: "NOT_FOUND" }]);

    await t.db.project.update({ where: { id: project.tiny! }, data: { artifactQuotaBytes: 10n } });
    const over = await create("registerMetaModel", CREATES[2]!.input(), tokens.tiny!);
    expect(over.id).toBeNull();
    expect(over.userErrors).toMatchObject([{ field: ["input", "weightsPath"], code: "QUOTA_EXCEEDED" }]);
    expect(await t.db.metaModel.count({ where: { projectId: project.tiny! } })).toBe(0);
  });
});
