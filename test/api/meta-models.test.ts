import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { saveWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { VIT_DEFAULTS, type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { useTestDatabase } from "../helpers/database.ts";
import {
  CREATE_ARCHITECTURE,
  recordingDispatcher,
  type UserErrorShape,
  unique,
  useApiServer,
} from "./support.ts";

const t = useTestDatabase();
const dir = mkdtempSync(join(tmpdir(), "incubator-meta-"));
const store = new LocalArtifactStore(join(dir, "artifacts"));
const dispatcher = recordingDispatcher();
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
      checkpoint: { kind: "meta-weights" },
    });
    expect(await store.has(registerMetaModel.metaModel!.checkpoint.sha256)).toBe(true);

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
