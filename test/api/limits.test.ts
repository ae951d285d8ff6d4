/**
 * What a request may cost and what clients see when refused: operation limits over HTTP and
 * WebSocket, HTTP-level limits and JSON errors, masked internal errors, bounded numbers, and
 * server-side files only inside the data roots.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type ApiServer, startApiServer } from "../../src/api/server.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { ARCHITECTURE_LIMITS, DEFAULT_REQUEST_LIMITS } from "../../src/platform/limits.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import {
  authHeaders,
  collectSubscription,
  type GraphQLResponse,
  postGraphQL,
  useToken,
  wsClient,
} from "../helpers/graphql.ts";
import { CREATE_ARCHITECTURE, REGISTER_DATASET, START_RUN, unique } from "./support.ts";

const t = useTestDatabase();
const dir = mkdtempSync(join(tmpdir(), "incubator-limits-"));
const root = join(dir, "root");
mkdirSync(root);
const logLines: Record<string, unknown>[] = [];
const logger = pino(
  { level: "info" },
  new Writable({
    write(chunk, _encoding, callback) {
      logLines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      callback();
    },
  }),
);
let server: ApiServer;
let closed: ApiServer;
const origin = () => server.url.replace(/\/graphql$/, "");

beforeAll(async () => {
  const common = { db: t.db, databaseUrl: t.url, logger, port: 0, host: "127.0.0.1" };
  server = await startApiServer({
    ...common,
    artifacts: new LocalArtifactStore(join(dir, "artifacts")),
    dataRoots: [root],
    limits: { maxSubscriptionsPerConnection: 2, maxWsPayloadBytes: 64 * 1024, maxBodyBytes: 64 * 1024 },
    dispatcher: {
      runCreated: async () => {},
      cancelRun: async () => {
        throw new Error(`cannot reach ${dir}/queue.sock`);
      },
      retryModule: async () => {},
    },
  });
  closed = await startApiServer({ ...common, introspection: false });
  // Real tokens, as every test but the local-mode ones: the limits apply to authenticated callers.
  const token = await mintToken(t.db, "ADMIN");
  useToken(server.url, token);
  useToken(closed.url, token);
});
afterAll(async () => {
  await server?.close();
  await closed?.close();
  rmSync(dir, { recursive: true, force: true });
});

const HOSTILE = `runs(first: 100) { nodes { modules { jobs { id } } } }`;

async function overWs(url: string, query: string): Promise<unknown> {
  const client = wsClient(url);
  try {
    const { results, error } = await collectSubscription(client, query);
    return error ?? results[0]?.errors;
  } finally {
    await client.dispose();
  }
}

describe("operation limits, the same over HTTP and WebSocket", () => {
  const cases: [string, string, string][] = [
    ["aliases", `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: health { ok }`).join(" ")} }`, "aliases"],
    [
      "cost",
      `{ a: runs(first: 100) { nodes { modules { jobs { id } } } } b: ${HOSTILE} c: ${HOSTILE}
      d: ${HOSTILE} e: ${HOSTILE} f: ${HOSTILE} g: ${HOSTILE} h: ${HOSTILE} i: ${HOSTILE} j: ${HOSTILE} }`,
      "cost",
    ],
    ["directives", `{ health { ok ${"@include(if: true) ".repeat(60)} } }`, "directives"],
    ["tokens", `{ ${"health { ok } ".repeat(2000)} }`, "tokens"],
  ];
  for (const [name, query, limit] of cases) {
    it(`refuses too many ${name} with GRAPHQL_VALIDATION_FAILED and limit "${limit}"`, async () => {
      const http = await postGraphQL(server.url, query);
      expect(http.data).toBeUndefined();
      expect(http.errors?.[0]?.extensions).toMatchObject({ code: "GRAPHQL_VALIDATION_FAILED", limit });
      expect(http.errors?.[0]?.message).toMatch(/limit is \d+/);
      const ws = JSON.stringify(await overWs(server.wsUrl, query));
      expect(ws).toContain('"code":"GRAPHQL_VALIDATION_FAILED"');
      expect(ws).toContain(`"limit":"${limit}"`);
    });
  }

  it("refuses the report's 300 aliases of runs(first: 100) { … }", async () => {
    const query = `{ ${Array.from({ length: 300 }, (_, i) => `a${i}: ${HOSTILE}`).join(" ")} }`;
    const res = await postGraphQL(server.url, query);
    expect(res.data).toBeUndefined();
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: "GRAPHQL_VALIDATION_FAILED", limit: "tokens" });
  });

  it("counts a variable page size as the largest page", async () => {
    const query = `query ($n: Int) { ${Array.from({ length: 10 }, (_, i) => `a${i}: runs(first: $n) { nodes { modules { jobs { id } } } }`).join(" ")} }`;
    const res = await postGraphQL(server.url, query, { n: 1 });
    expect(res.errors?.[0]?.extensions).toMatchObject({
      limit: "cost",
      maxCost: DEFAULT_REQUEST_LIMITS.maxCost,
    });
  });

  it("accepts an ordinary query", async () => {
    const res = await postGraphQL(server.url, `{ ${HOSTILE} architectures { nodes { id } } }`);
    expect(res.errors).toBeUndefined();
  });

  it("caps the operations one WebSocket connection runs at once", async () => {
    const client = wsClient(server.wsUrl);
    try {
      const endless = () =>
        collectSubscription(client, "subscription { serverTime(intervalMs: 1000) { tick } }");
      void endless();
      void endless();
      const third = await endless();
      expect(JSON.stringify(third.error)).toMatch(/"limit":"subscriptions"/);
    } finally {
      await client.dispose();
    }
  });

  it("closes a WebSocket whose message is larger than maxPayload", async () => {
    const socket = new WebSocket(server.wsUrl, "graphql-transport-ws");
    await new Promise((resolve) => socket.once("open", resolve));
    const code = new Promise<number>((resolve) => socket.once("close", resolve));
    socket.send(JSON.stringify({ type: "connection_init", payload: { x: "y".repeat(100 * 1024) } }));
    expect(await code).toBe(1009);
  });

  it("bounds serverTime's interval and count", async () => {
    for (const args of ["intervalMs: 86400000", "intervalMs: 10, count: 1000000000"]) {
      const errors = JSON.stringify(
        await overWs(server.wsUrl, `subscription { serverTime(${args}) { tick } }`),
      );
      expect(errors).toContain("BAD_USER_INPUT");
    }
  });

  it("answers introspection unless turned off", async () => {
    expect((await postGraphQL(server.url, "{ __schema { queryType { name } } }")).errors).toBeUndefined();
    const off = await postGraphQL(closed.url, "{ __schema { queryType { name } } }");
    expect(off.errors?.[0]?.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    expect(JSON.stringify(await overWs(closed.wsUrl, '{ __type(name: "Run") { name } }'))).toContain(
      "GRAPHQL_VALIDATION_FAILED",
    );
  });
});

describe("HTTP errors are JSON with a code and request id", () => {
  const send = (path: string, init: RequestInit = {}) =>
    fetch(`${origin()}${path}`, {
      ...init,
      headers: { ...authHeaders(server.url), ...(init.headers as Record<string, string> | undefined) },
    });
  const json = { "content-type": "application/json" };

  it.each([
    ["malformed JSON", "/graphql", { method: "POST", headers: json, body: "{nope" }, 400, "BAD_REQUEST"],
    [
      "an oversized body",
      "/graphql",
      { method: "POST", headers: json, body: `{"query":"${"x".repeat(70_000)}"}` },
      413,
      "PAYLOAD_TOO_LARGE",
    ],
    ["an unknown route", "/nowhere", {}, 404, "NOT_FOUND"],
    ["a wrong method", "/graphql", { method: "DELETE" }, 405, "METHOD_NOT_ALLOWED"],
    [
      "a wrong method on artifacts",
      `/artifacts/${"a".repeat(64)}`,
      { method: "POST" },
      405,
      "METHOD_NOT_ALLOWED",
    ],
    ["a missing artifact", "/artifacts/..%2f..%2fetc%2fpasswd", {}, 404, "NOT_FOUND"],
    [
      "a non-JSON body",
      "/graphql",
      { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" },
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    ],
    [
      "a mutation over GET",
      "/graphql?query=mutation%7BcancelRun(input%3A%7BrunId%3A%22x%22%7D)%7Brun%7Bid%7D%7D%7D",
      { headers: { "apollo-require-preflight": "1" } },
      405,
      undefined,
    ],
    [
      "an upload without a token",
      `/artifacts/${"a".repeat(64)}`,
      { method: "PUT", body: "x", headers: { authorization: "" } },
      401,
      "UNAUTHENTICATED",
    ],
  ] as const)("answers %s", async (_name, path, init, status, code) => {
    const res = await send(path, init as RequestInit);
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toMatch(/json/);
    const body = await res.text();
    expect(body).not.toMatch(/<html|<pre|\bat \w+ \(|node_modules/);
    const parsed = JSON.parse(body) as { code?: string; errors?: { extensions?: { code?: string } }[] };
    expect(parsed.code ?? parsed.errors?.[0]?.extensions?.code).toBeTruthy();
    if (code) expect(parsed.code).toBe(code);
  });

  it("keeps a sane incoming x-request-id and makes one otherwise", async () => {
    const kept = await send("/nowhere", { headers: { "x-request-id": "abc-123" } });
    expect(kept.headers.get("x-request-id")).toBe("abc-123");
    const made = await send("/nowhere", { headers: { "x-request-id": "<script>" } });
    expect(made.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("internal errors", () => {
  it("are masked for clients and logged with the same request id", async () => {
    const gql = async <T>(query: string, input: object) =>
      (await postGraphQL<T>(server.url, query, { input })).data as T;
    const arch = await gql<{ createArchitecture: { architecture: { id: string } } }>(CREATE_ARCHITECTURE, {
      name: unique("a"),
      imageSize: 8,
      patchSize: 4,
      width: 8,
      depth: 2,
      heads: 2,
      numClasses: 2,
      modules: 2,
    });
    const ds = await gql<{ registerDataset: { dataset: { id: string } } }>(REGISTER_DATASET, {
      name: unique("d"),
      spec: { format: "synthetic", numClasses: 2, imageSize: 8, length: 10 },
    });
    const run = await gql<{ startRun: { run: { id: string } } }>(START_RUN, {
      kind: "INCUBATION",
      architectureId: arch.createArchitecture.architecture.id,
      datasetId: ds.registerDataset.dataset.id,
    });
    const res = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "masked-1", ...authHeaders(server.url) },
      body: JSON.stringify({
        query: "mutation ($id: ID!) { cancelRun(input: { runId: $id }) { run { id } } }",
        variables: { id: run.startRun.run.id },
      }),
    });
    const body = (await res.json()) as GraphQLResponse<unknown>;
    expect(body.errors?.[0]).toMatchObject({
      message: "Internal server error",
      extensions: { code: "INTERNAL_SERVER_ERROR", requestId: "masked-1" },
    });
    expect(JSON.stringify(body)).not.toContain(dir);
    expect(logLines.some((l) => l.requestId === "masked-1" && JSON.stringify(l).includes("queue.sock"))).toBe(
      true,
    );
  });
});

describe("numbers clients send", () => {
  it("refuses architecture sizes past the limits before computing anything", async () => {
    const res = await postGraphQL<{
      createArchitecture: { userErrors: { field: string[]; code: string }[] };
    }>(server.url, CREATE_ARCHITECTURE, {
      input: {
        name: unique("huge"),
        imageSize: 32,
        patchSize: 4,
        width: 64,
        depth: 2_000_000_000,
        heads: 4,
        numClasses: 10,
      },
    });
    expect(res.data?.createArchitecture.userErrors).toEqual([
      {
        field: ["input", "depth"],
        code: "INVALID",
        message: `depth must be at most ${ARCHITECTURE_LIMITS.depth}, got 2000000000`,
      },
    ]);
    const params = await postGraphQL<{ createArchitecture: { userErrors: { message: string }[] } }>(
      server.url,
      CREATE_ARCHITECTURE,
      {
        input: {
          name: unique("big"),
          imageSize: 224,
          patchSize: 16,
          width: 16384,
          depth: 256,
          heads: 128,
          numClasses: 10,
          modules: 4,
        },
      },
    );
    expect(params.data?.createArchitecture.userErrors[0]?.message).toMatch(/parameters; the limit is/);
  });

  it("refuses recipe and dataset numbers past the limits", async () => {
    const ds = await postGraphQL<{ registerDataset: { userErrors: unknown[] } }>(
      server.url,
      REGISTER_DATASET,
      {
        input: { name: unique("d"), spec: { format: "synthetic", length: 1e9 } },
      },
    );
    expect(ds.data?.registerDataset.userErrors).toMatchObject([
      { field: ["input", "spec", "length"], code: "INVALID" },
    ]);
    const run = await postGraphQL<{ startRun: { userErrors: { field: string[] }[] } }>(
      server.url,
      START_RUN,
      {
        input: {
          kind: "E2E",
          architectureId: "x",
          datasetId: "y",
          priority: 2_000_000,
          overrides: { batchSize: 1e9, steps: { e2e: 1e12 }, augment: { outputSize: 1e6 } },
        },
      },
    );
    const fields = run.data?.startRun.userErrors.map((e) => e.field.join("."));
    expect(fields).toEqual(
      expect.arrayContaining([
        "input.priority",
        "input.overrides.batchSize",
        "input.overrides.steps.e2e",
        "input.overrides.augment.outputSize",
      ]),
    );
  });
});

describe("server-side files", () => {
  const REGISTER_META = `mutation ($input: RegisterMetaModelInput!) {
    registerMetaModel(input: $input) { metaModel { id } userErrors { field message code } } }`;
  const messageOf = async (weightsPath: string) => {
    const res = await postGraphQL<{ registerMetaModel: { userErrors: { message: string; code: string }[] } }>(
      server.url,
      REGISTER_META,
      { input: { name: unique("m"), weightsPath, heads: 2 } },
    );
    return res.data!.registerMetaModel.userErrors;
  };

  it("refuses anything outside the data roots with one message, existing or not", async () => {
    const outside = join(dir, "outside.safetensors");
    writeFileSync(outside, "secret bytes");
    symlinkSync(outside, join(root, "link.safetensors"));
    const answers = await Promise.all(
      [
        "/etc/passwd",
        "/nonexistent/x",
        outside,
        join(root, "link.safetensors"),
        `${root}/../outside.safetensors`,
        "relative/x",
      ].map(messageOf),
    );
    for (const errors of answers) {
      expect(errors).toEqual([
        { field: ["input", "weightsPath"], code: "NOT_FOUND", message: answers[0]![0]!.message },
      ]);
    }
    expect(answers[0]![0]!.message).not.toMatch(/passwd|header|\d{6,}/);
  });

  it("does not echo a file's bytes or a folder's listing inside a root", async () => {
    writeFileSync(join(root, "text.safetensors"), "root:x:0:0:root:/root:/bin/bash\n".repeat(10));
    const [error] = await messageOf(join(root, "text.safetensors"));
    expect(error?.message).toMatch(/^weightsPath: cannot be read as a safetensors checkpoint/);
    // (The request id at its end is random hex: it may hold a run of digits.)
    expect(error?.message.replace(/\(request [^)]*\)/, "")).not.toMatch(/header length|\d{8,}|root:x/);
    const folder = join(root, "images");
    mkdirSync(join(folder, "secret-class-name"), { recursive: true });
    const ds = await postGraphQL<{ registerDataset: { userErrors: { message: string }[] } }>(
      server.url,
      REGISTER_DATASET,
      {
        input: { name: unique("d"), spec: { format: "image-folder", path: folder } },
      },
    );
    expect(ds.data?.registerDataset.userErrors[0]?.message).toMatch(
      /cannot be read as an image-folder dataset/,
    );
    expect(JSON.stringify(ds)).not.toContain("secret-class-name");
  });
});
