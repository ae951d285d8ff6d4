/** Shared set-up for the API tests: a server on the file's scratch database, and GraphQL helpers. */
import { tmpdir } from "node:os";
import { afterAll, beforeAll, expect } from "vitest";
import type { RunDispatcher } from "../../src/api/context.ts";
import type { ApiServer } from "../../src/api/server.ts";
import type { ArtifactStore } from "../../src/platform/artifacts/store.ts";
import type { Db } from "../../src/platform/db/client.ts";
import type { RequestLimits } from "../../src/platform/limits.ts";
import { startTestApiServer } from "../helpers/api-server.ts";
import { mintToken } from "../helpers/auth.ts";
import type { TestDatabase } from "../helpers/database.ts";
import { postGraphQL, useToken } from "../helpers/graphql.ts";

export interface RecordingDispatcher extends RunDispatcher {
  calls: { method: keyof RunDispatcher; id: string }[];
}

/** A dispatcher that records what the API asked of it (and leaves states alone). */
export function recordingDispatcher(): RecordingDispatcher {
  const calls: RecordingDispatcher["calls"] = [];
  return {
    calls,
    runCreated: async (id) => {
      calls.push({ method: "runCreated", id });
    },
    cancelRun: async (id) => {
      calls.push({ method: "cancelRun", id });
    },
    retryModule: async (id) => {
      calls.push({ method: "retryModule", id });
    },
  };
}

/** Starts an API server before the file's tests (after the database exists) and stops it after. */
export function useApiServer(
  t: TestDatabase,
  options: {
    dispatcher?: RunDispatcher;
    db?: () => Db;
    artifacts?: ArtifactStore;
    shardCacheDir?: string;
    /** Where server-side files may be read (default: the OS temp folder, where tests write them). */
    dataRoots?: string[];
    limits?: Partial<RequestLimits>;
  } = {},
): {
  server: ApiServer;
  /** An admin API token for every project, sent by the helpers by default. */
  token: string;
  gql: <T = Record<string, unknown>>(query: string, variables?: object) => Promise<T>;
} {
  const handle = {} as ReturnType<typeof useApiServer>;
  beforeAll(async () => {
    handle.server = await startTestApiServer(t, {
      db: options.db?.() ?? t.db,
      ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
      ...(options.artifacts ? { artifacts: options.artifacts } : {}),
      ...(options.shardCacheDir ? { shardCacheDir: options.shardCacheDir } : {}),
      dataRoots: options.dataRoots ?? [tmpdir()],
      ...(options.limits ? { limits: options.limits } : {}),
    });
    handle.token = await mintToken(t.db, "ADMIN");
    useToken(handle.server.url, handle.token);
    handle.gql = async <T>(query: string, variables?: object) => {
      const res = await postGraphQL<T>(handle.server.url, query, variables as Record<string, unknown>);
      expect(res.errors).toBeUndefined();
      return res.data as T;
    };
  });
  afterAll(async () => {
    await handle.server?.close();
  });
  return handle;
}

export const unique = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;

export interface UserErrorShape {
  field: string[] | null;
  message: string;
  code: string;
}

export const CREATE_ARCHITECTURE = `mutation ($input: CreateArchitectureInput!) {
  createArchitecture(input: $input) {
    architecture { id name imageSize channels patchSize width depth heads mlpRatio numClasses
      moduleSplit numModules parameterCount modules { index blockStart blockEnd blocks } }
    userErrors { field message code }
  }
}`;

export const REGISTER_DATASET = `mutation ($input: RegisterDatasetInput!) {
  registerDataset(input: $input) {
    dataset { id name format path spec numClasses trainSize testSize }
    userErrors { field message code }
  }
}`;

export const START_RUN = `mutation ($input: StartRunInput!) {
  startRun(input: $input) {
    run { id kind state recipe overrides decentralized priority seed
      architecture { id } dataset { id } metaModel { id }
      modules { id index blockStart blockEnd state shard } }
    userErrors { field message code }
  }
}`;

type Gql = ReturnType<typeof useApiServer>["gql"];

/** The small architecture the API tests start runs on (16 px, width 32, depth 6); `input` adds or overrides fields. */
export async function createSmallArchitecture(
  gql: Gql,
  input: Record<string, unknown> = {},
): Promise<string> {
  const res = await gql<{ createArchitecture: { architecture: { id: string } } }>(CREATE_ARCHITECTURE, {
    input: {
      name: unique("arch"),
      imageSize: 16,
      patchSize: 4,
      width: 32,
      depth: 6,
      heads: 2,
      numClasses: 10,
      ...input,
    },
  });
  return res.createArchitecture.architecture.id;
}

/** A 40-image synthetic dataset matching createSmallArchitecture; `spec` adds or overrides fields. */
export async function registerSmallDataset(gql: Gql, spec: Record<string, unknown> = {}): Promise<string> {
  const res = await gql<{ registerDataset: { dataset: { id: string } } }>(REGISTER_DATASET, {
    input: {
      name: unique("data"),
      spec: { format: "synthetic", numClasses: 10, length: 40, imageSize: 16, ...spec },
    },
  });
  return res.registerDataset.dataset.id;
}
