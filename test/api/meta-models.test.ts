import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeGlobalId } from "../../src/api/global-id.ts";
import { loadWeights, saveWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { exportVitOnnx } from "../../src/engine/export/onnx-export.ts";
import { VIT_DEFAULTS, type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { metaModelConfig } from "../../src/platform/meta-model-source.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { SOURCE_VIT, timmVitTensors, writeTimmCheckpoint } from "../helpers/timm-vit.ts";
import {
  CREATE_ARCHITECTURE,
  REGISTER_DATASET,
  recordingDispatcher,
  START_RUN,
  type UserErrorShape,
  unique,
  useApiServer,
} from "./support.ts";

const t = useTestDatabase();
const dir = mkdtempSync(join(tmpdir(), "incubator-meta-"));
const store = new LocalArtifactStore(join(dir, "artifacts"));
const dispatcher = recordingDispatcher();
const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
const api = useApiServer(t, { dispatcher, artifacts: store });

const META: VitConfig = {
  ...VIT_DEFAULTS,
  imageSize: 16,
  patchSize: 4,
  width: 32,
  depth: 4,
  heads: 2,
  numClasses: 10,
};

function writeMeta(cfg: VitConfig, name: string): string {
  const specs = vitParamSpecs(cfg);
  const parameters = new Map(
    specs.map((s) => [s.name, new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(0.01)] as const),
  );
  const path = join(dir, name);
  saveWeights(path, { parameters, shapes: specs });
  return path;
}

const META_FIELDS = `id name width heads patchSize imageSize numModules channels numClasses mlpRatio qkvBias
  checkpoint { kind sha256 }
  source { origin run { id } file { fileName sha256 } format externalData { fileName sha256 } strippedPrefix
           sourceDepth blocks sourceNumClasses headReset }`;

const REGISTER = `mutation ($input: RegisterMetaModelInput!) {
  registerMetaModel(input: $input) {
    metaModel { id name width heads patchSize imageSize numModules checkpoint { kind sha256 } }
    userErrors { field message code }
  }
}`;

interface Registered {
  registerMetaModel: {
    metaModel: {
      id: string;
      width: number;
      patchSize: number;
      imageSize: number;
      numModules: number;
      checkpoint: { kind: string; sha256: string };
    } | null;
    userErrors: UserErrorShape[];
  };
}

describe("registerMetaModel", () => {
  it("reads the architecture from the tensors, stores the file, and a run can incubate with it", async () => {
    const path = writeMeta(META, "meta.safetensors");
    const { registerMetaModel } = await api.gql<Registered>(REGISTER, {
      input: { name: unique("meta"), weightsPath: path, heads: 2 },
    });
    expect(registerMetaModel.userErrors).toEqual([]);
    expect(registerMetaModel.metaModel).toMatchObject({
      width: 32,
      patchSize: 4,
      imageSize: 16,
      numModules: 4,
      checkpoint: { kind: "META_WEIGHTS" },
    });
    expect(await store.has(registerMetaModel.metaModel!.checkpoint.sha256)).toBe(true);
    const { metaModel: read } = await api.gql<{ metaModel: Record<string, unknown> }>(
      `query ($id: ID!) { metaModel(id: $id) { ${META_FIELDS} } }`,
      { id: registerMetaModel.metaModel!.id },
    );
    expect(read).toMatchObject({
      channels: 3,
      numClasses: 10,
      mlpRatio: 4,
      qkvBias: true,
      source: {
        origin: "REGISTERED",
        run: null,
        file: { fileName: "meta.safetensors", sha256: registerMetaModel.metaModel!.checkpoint.sha256 },
        format: "SAFETENSORS",
        blocks: null,
      },
    });

    const arch = await api.gql<{ createArchitecture: { architecture: { id: string } } }>(
      CREATE_ARCHITECTURE,
      {
        input: {
          name: unique("target"),
          imageSize: 16,
          patchSize: 4,
          width: 32,
          depth: 8,
          heads: 2,
          numClasses: 10,
          modules: 4,
        },
      },
    );
    const ds = await api.gql<{ registerDataset: { dataset: { id: string } } }>(
      `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } userErrors { message } } }`,
      {
        input: {
          name: unique("synth"),
          spec: { format: "synthetic", numClasses: 10, imageSize: 16, length: 64 },
        },
      },
    );
    const started = await api.gql<{
      startRun: { run: { id: string; metaModel: { id: string } } | null; userErrors: UserErrorShape[] };
    }>(
      `mutation ($input: StartRunInput!) { startRun(input: $input) { run { id metaModel { id } } userErrors { field message code } } }`,
      {
        input: {
          kind: "INCUBATION",
          architectureId: arch.createArchitecture.architecture.id,
          datasetId: ds.registerDataset.dataset.id,
          metaModelId: registerMetaModel.metaModel!.id,
        },
      },
    );
    expect(started.startRun.userErrors).toEqual([]);
    expect(started.startRun.run!.metaModel.id).toBe(registerMetaModel.metaModel!.id);
  });

  it("refuses missing files, garbage, impossible heads and taken names, naming the field", async () => {
    const errorsOf = async (input: Record<string, unknown>) =>
      (await api.gql<Registered>(REGISTER, { input })).registerMetaModel.userErrors;
    expect(
      await errorsOf({ name: unique("m"), weightsPath: join(dir, "nope.safetensors"), heads: 2 }),
    ).toMatchObject([{ field: ["input", "weightsPath"], code: "NOT_FOUND" }]);
    const garbage = join(dir, "garbage.safetensors");
    writeFileSync(garbage, "not a safetensors file at all");
    expect(await errorsOf({ name: unique("m"), weightsPath: garbage, heads: 2 })).toMatchObject([
      { field: ["input", "weightsPath"], code: "INVALID" },
    ]);
    const path = writeMeta(META, "meta2.safetensors");
    expect(await errorsOf({ name: unique("m"), weightsPath: path, heads: 3 })).toMatchObject([
      { field: ["input", "heads"], message: "width (32) must be divisible by heads (3)" },
    ]);
    const name = unique("m");
    expect(await errorsOf({ name, weightsPath: path, heads: 2 })).toEqual([]);
    expect(await errorsOf({ name, weightsPath: path, heads: 2 })).toMatchObject([
      { field: ["input", "name"], code: "TAKEN" },
    ]);
  });
});

const IMPORT = `mutation ($input: ImportMetaModelInput!) {
  importMetaModel(input: $input) { metaModel { ${META_FIELDS} } userErrors { field message code } }
}`;

interface Imported {
  importMetaModel: {
    metaModel: (Record<string, unknown> & { id: string; checkpoint: { sha256: string } }) | null;
    userErrors: UserErrorShape[];
  };
}

describe("importMetaModel", () => {
  const source = timmVitTensors();
  const sourcePath = writeTimmCheckpoint(join(dir, "vit-s6.safetensors"), source);
  const importMeta = async (input: Record<string, unknown>) =>
    (await api.gql<Imported>(IMPORT, { input: { name: unique("imported"), heads: 4, modules: 4, ...input } }))
      .importMetaModel;

  it("derives the meta model, stores its weights and records where it came from", async () => {
    const datasetId = (
      await api.gql<{ registerDataset: { dataset: { id: string } } }>(REGISTER_DATASET, {
        input: {
          name: unique("synth"),
          spec: { format: "synthetic", numClasses: 10, imageSize: 16, length: 64 },
        },
      })
    ).registerDataset.dataset.id;
    const { metaModel, userErrors } = await importMeta({ path: sourcePath, datasetId });
    expect(userErrors).toEqual([]);
    expect(metaModel).toMatchObject({
      width: 32,
      heads: 4,
      patchSize: 4,
      imageSize: 16,
      numModules: 4,
      channels: 3,
      numClasses: 10,
      mlpRatio: 4,
      qkvBias: true,
      checkpoint: { kind: "META_WEIGHTS" },
      source: {
        origin: "IMPORTED",
        run: null,
        file: { fileName: "vit-s6.safetensors", sha256: sha256(sourcePath) },
        format: "SAFETENSORS",
        externalData: [],
        strippedPrefix: "",
        sourceDepth: 6,
        blocks: [0, 2, 3, 5],
        sourceNumClasses: 10,
        headReset: false,
      },
    });

    // The stored artifact is the derived meta model: meta block j is source block blocks[j].
    const cfg = { ...SOURCE_VIT, depth: 4 };
    const stored = loadWeights(await store.getFile(metaModel!.checkpoint.sha256), {
      expect: vitParamSpecs(cfg),
    });
    for (const [j, b] of [0, 2, 3, 5].entries()) {
      const a = stored.get(`blocks.${j}.attn.qkv.weight`)!;
      expect(
        Buffer.from(a.buffer).equals(Buffer.from(source.get(`blocks.${b}.attn.qkv.weight`)!.data.buffer)),
      ).toBe(true);
    }
    // The row holds the full config (drop path is a training setting, not stored) and the source.
    const row = await t.db.metaModel.findUniqueOrThrow({
      where: { id: decodeGlobalId("MetaModel", metaModel!.id)! },
    });
    expect(metaModelConfig(row)).toEqual({ ...cfg, dropPathRate: 0 });
    expect(row.source).toMatchObject({ kind: "imported", format: "safetensors", blocks: [0, 2, 3, 5] });
    expect(row.datasetId).toBe(decodeGlobalId("Dataset", datasetId));
  });

  it("imports ONNX (format from the extension) with explicit blocks and a new head", async () => {
    const values = new Map([...source].map(([name, v]) => [name, v.data]));
    const onnxPath = exportVitOnnx(join(dir, "vit-s6.onnx"), SOURCE_VIT, values, {
      externalDataThreshold: 0,
    }).path;
    const { metaModel, userErrors } = await importMeta({
      path: onnxPath,
      modules: 2,
      blocks: [1, 4],
      numClasses: 3,
    });
    expect(userErrors).toEqual([]);
    expect(metaModel).toMatchObject({
      numModules: 2,
      numClasses: 3,
      source: {
        origin: "IMPORTED",
        format: "ONNX",
        externalData: [{ fileName: "vit-s6.onnx.data" }],
        blocks: [1, 4],
        sourceNumClasses: 10,
        headReset: true,
      },
    });

    // Its stored config takes part in startRun's compatibility check: 3 classes ≠ 10.
    const arch = await api.gql<{ createArchitecture: { architecture: { id: string } } }>(
      CREATE_ARCHITECTURE,
      {
        input: {
          name: unique("ten-classes"),
          imageSize: 16,
          patchSize: 4,
          width: 32,
          depth: 4,
          heads: 4,
          numClasses: 10,
          modules: 2,
        },
      },
    );
    const ds = await api.gql<{ registerDataset: { dataset: { id: string } } }>(REGISTER_DATASET, {
      input: {
        name: unique("synth"),
        spec: { format: "synthetic", numClasses: 10, imageSize: 16, length: 64 },
      },
    });
    const started = await api.gql<{ startRun: { userErrors: UserErrorShape[] } }>(START_RUN, {
      input: {
        kind: "INCUBATION",
        architectureId: arch.createArchitecture.architecture.id,
        datasetId: ds.registerDataset.dataset.id,
        metaModelId: metaModel!.id,
      },
    });
    expect(started.startRun.userErrors).toEqual([
      {
        field: ["input", "metaModelId"],
        message: expect.stringMatching(
          /^meta model "imported-\w+", architecture "ten-classes-\w+": meta model numClasses \(3\) differs from the target's \(10\)$/,
        ),
        code: "INCOMPATIBLE",
      },
    ]);
  });

  it("returns userErrors naming the field", async () => {
    expect(await importMeta({ path: sourcePath, blocks: [0, 2, 2, 5] })).toEqual({
      metaModel: null,
      userErrors: [
        {
          field: ["input", "blocks"],
          message: "blocks[2] (2) repeats blocks[1]: each meta stage needs its own block",
          code: "INVALID",
        },
      ],
    });
    expect((await importMeta({ path: sourcePath, heads: 3 })).userErrors).toEqual([
      { field: ["input", "heads"], message: "width (32) must be divisible by heads (3)", code: "INVALID" },
    ]);
    expect((await importMeta({ path: sourcePath, modules: 7 })).userErrors).toMatchObject([
      { field: ["input", "modules"], code: "INVALID" },
    ]);
    expect((await importMeta({ path: sourcePath, format: "ONNX" })).userErrors).toMatchObject([
      {
        field: ["input", "path"],
        message: expect.stringMatching(
          /^path: cannot be read as a pre-trained ViT .*server's log has the details/,
        ),
        code: "INVALID",
      },
    ]);
    expect((await importMeta({ path: join(dir, "nope.onnx") })).userErrors).toEqual([
      {
        field: ["input", "path"],
        message: expect.stringMatching(
          /^path: not a readable path inside the server's data roots \(DATA_ROOTS\)/,
        ),
        code: "NOT_FOUND",
      },
    ]);
    const name = unique("taken");
    expect((await importMeta({ name, path: sourcePath })).userErrors).toEqual([]);
    expect((await importMeta({ name, path: sourcePath })).userErrors).toEqual([
      {
        field: ["input", "name"],
        message: `a meta model named "${name}" already exists in this project`,
        code: "TAKEN",
      },
    ]);
    expect((await importMeta({ path: sourcePath, datasetId: "nonsense" })).userErrors).toMatchObject([
      { field: ["input", "datasetId"], code: "NOT_FOUND" },
    ]);
  });
});

describe("meta model weights without server paths", () => {
  it("an operator uploads the file with PUT /artifacts and registers it by its sha256; a viewer may not upload", async () => {
    const path = writeMeta(META, "uploaded.safetensors");
    const bytes = readFileSync(path);
    const sha = sha256(path);
    const base = api.server.url.replace(/\/graphql$/, "");
    const put = (token: string) =>
      fetch(`${base}/artifacts/${sha}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
        body: bytes,
      });
    const viewer = await mintToken(t.db, "VIEWER");
    expect((await put(viewer)).status).toBe(403);
    const operator = await mintToken(t.db, "OPERATOR");
    expect((await put(operator)).status).toBeLessThan(300);

    const missing = await postGraphQL<Registered>(
      api.server.url,
      REGISTER,
      { input: { name: unique("meta"), weightsSha256: "f".repeat(64), heads: 2 } },
      { token: operator },
    );
    expect(missing.data!.registerMetaModel.userErrors).toMatchObject([
      { field: ["input", "weightsSha256"], code: "NOT_FOUND" },
    ]);
    const both = await postGraphQL<Registered>(
      api.server.url,
      REGISTER,
      { input: { name: unique("meta"), weightsSha256: sha, weightsPath: path, heads: 2 } },
      { token: operator },
    );
    expect(both.data!.registerMetaModel.userErrors).toMatchObject([{ code: "REQUIRED" }]);

    const ok = await postGraphQL<Registered>(
      api.server.url,
      REGISTER,
      { input: { name: unique("meta"), weightsSha256: sha, heads: 2 } },
      { token: operator },
    );
    expect(ok.data!.registerMetaModel.userErrors).toEqual([]);
    expect(ok.data!.registerMetaModel.metaModel).toMatchObject({
      width: 32,
      numModules: 4,
      checkpoint: { kind: "META_WEIGHTS", sha256: sha },
    });
  });

  it("artifact metadata and a dataset's path show server paths to admins only", async () => {
    const path = writeMeta(META, "where.safetensors");
    const { registerMetaModel } = await api.gql<Registered>(REGISTER, {
      input: { name: unique("meta"), weightsPath: path, heads: 2 },
    });
    const id = registerMetaModel.metaModel!.id;
    const query = `query ($id: ID!) { metaModel(id: $id) { checkpoint { metadata } } }`;
    const asViewer = await postGraphQL<{ metaModel: { checkpoint: { metadata: unknown } } }>(
      api.server.url,
      query,
      { id },
      { token: await mintToken(t.db, "VIEWER") },
    );
    expect(JSON.stringify(asViewer.data)).not.toContain(dir);
    expect(asViewer.data!.metaModel.checkpoint.metadata).toEqual({ source: "where.safetensors" });

    const dataDir = mkdtempSync(join(tmpdir(), "incubator-paths-"));
    writeFileSync(join(dataDir, "x"), "");
    const { registerDataset } = await api.gql<{ registerDataset: { dataset: { id: string } | null } }>(
      `mutation ($input: RegisterDatasetInput!) { registerDataset(input: $input) { dataset { id } } }`,
      { input: { name: unique("synthetic"), spec: { format: "synthetic", numClasses: 2, length: 10 } } },
    );
    expect(registerDataset.dataset).not.toBeNull();
    const datasetQuery = `query ($id: ID!) { dataset(id: $id) { path spec } }`;
    // A dataset with files: the path as admins and as viewers see it.
    const row = await t.db.dataset.update({
      where: { id: decodeGlobalId("Dataset", registerDataset.dataset!.id)! },
      data: { path: join(dataDir, "x") },
    });
    const admin = await api.gql<{ dataset: { path: string } }>(datasetQuery, {
      id: registerDataset.dataset!.id,
    });
    expect(admin.dataset.path).toBe(row.path);
    const viewer = await postGraphQL<{ dataset: { path: string } }>(
      api.server.url,
      datasetQuery,
      { id: registerDataset.dataset!.id },
      { token: await mintToken(t.db, "VIEWER") },
    );
    expect(viewer.data!.dataset.path).toBe("x");
  });
});
