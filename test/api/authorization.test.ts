/**
 * The authorization matrix, generated from schema.graphql and the server's own routes: every root
 * Query, Mutation and Subscription field and every HTTP route must have a policy (src/api/auth/
 * policy.ts), and each is called by every kind of caller — no token, viewer, operator and admin
 * of project A, an admin of every project, an admin of another project (B), a revoked and an
 * expired token, a worker token holding a job of A and a revoked worker token — over real HTTP
 * and graphql-ws with real tokens. The answer must be refused (UNAUTHENTICATED / FORBIDDEN, or
 * for another project's rows: not found and nothing of A in the answer) or allowed, as the
 * policy says. The expectation below is written from the policy's meaning, not from its code.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Express } from "express";
import {
  buildSchema as buildSdl,
  type GraphQLArgument,
  GraphQLEnumType,
  type GraphQLField,
  GraphQLInputObjectType,
  type GraphQLInputType,
  type GraphQLInterfaceType,
  GraphQLList,
  GraphQLNonNull,
  type GraphQLObjectType,
  type GraphQLOutputType,
  GraphQLScalarType,
  GraphQLUnionType,
} from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listRoutes } from "../../src/api/auth/http-guard.ts";
import { FIELD_POLICIES, type Policy, ROUTE_POLICIES, type RootType } from "../../src/api/auth/policy.ts";
import { DEFAULT_DASHBOARD_DIR } from "../../src/api/dashboard.ts";
import { toGlobalId } from "../../src/api/global-id.ts";
import { SCHEMA_PATH } from "../../src/api/schema.ts";
import type { ApiServer } from "../../src/api/server.ts";
import type { Role } from "../../src/generated/prisma/client.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { revokeApiToken } from "../../src/platform/auth/api-tokens.ts";
import { createWorkerToken } from "../../src/platform/auth/worker-tokens.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import { tempDir } from "../data/helpers.ts";
import { startTestApiServer } from "../helpers/api-server.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent } from "../helpers/events.ts";
import { postGraphQL, wsClient } from "../helpers/graphql.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
const root = tempDir("authz");
let server: ApiServer;

interface Caller {
  name: string;
  token: string | null;
  /** What the caller is, for the expectation. */
  kind: "none" | "api" | "worker" | "revoked" | "expired" | "revoked-worker";
  role?: Role;
  /** Limited to projects (true) or every project (false). */
  limited?: boolean;
  /** Its projects do not include A, where every fixture row lives. */
  otherProject?: boolean;
}

const callers: Caller[] = [];
let projectBId = "";
/** Rows of project A; a caller of project B must see none of these in any answer. */
const a = {
  projectId: "",
  runId: "",
  moduleId: "",
  architectureId: "",
  datasetId: "",
  names: [] as string[],
  sha256: "",
};

beforeAll(async () => {
  const store = new LocalArtifactStore(join(root, "artifacts"));
  server = await startTestApiServer(t, {
    authRecheckMs: 100,
    // Every route × every caller, as fast as the machine allows: anonymous and refused callers
    // share one address budget, which a quiet machine exhausts. The rate limit has its own test.
    limits: { rateLimitPerSecond: 1_000_000, rateLimitBurst: 1_000_000 },
    artifacts: store,
    shardCacheDir: join(root, "shards"),
  });
  const [projectA, projectB] = await Promise.all(
    ["authz-a", "authz-b"].map((name) => t.db.project.create({ data: { name } })),
  );
  // Project A's rows: a run with modules, an artifact in the store, a job a worker holds.
  const { run, architecture, dataset } = await createRunRows(t.db, {
    modules: true,
    architecture: { project: { connect: { id: projectA!.id } } },
    dataset: { project: { connect: { id: projectA!.id } } },
    run: { projectId: projectA!.id },
  });
  const file = join(root, "checkpoint.bin");
  writeFileSync(file, "project A's checkpoint");
  const stored = await store.putFile(file);
  await t.db.artifact.create({
    data: {
      runId: run.id,
      projectId: projectA!.id,
      kind: "CHECKPOINT",
      sha256: stored.sha256,
      sizeBytes: BigInt(stored.sizeBytes),
    },
  });
  const module = await t.db.module.findFirstOrThrow({ where: { runId: run.id } });
  const worker = await createWorkerToken(t.db, { name: "authz-site", labels: [] });
  await t.db.job.create({
    data: {
      runId: run.id,
      moduleId: module.id,
      stage: "MODULAR",
      state: "RUNNING",
      workerId: "authz-site/w1",
      spec: { datasetId: dataset.id, metaWeights: `artifact:${stored.sha256}` },
    },
  });
  await appendRunEvents(t.db, run.id, [progressEvent(0, 1)]);
  Object.assign(a, {
    projectId: projectA!.id,
    runId: run.id,
    moduleId: module.id,
    architectureId: architecture.id,
    datasetId: dataset.id,
    names: [architecture.name, dataset.name],
    sha256: stored.sha256,
  });

  projectBId = projectB!.id;
  const inA = { projects: [projectA!.id] };
  const revoked = await mintToken(t.db, "ADMIN", { name: "authz-revoked" });
  const revokedRow = await t.db.apiToken.findUniqueOrThrow({ where: { name: "authz-revoked" } });
  await revokeApiToken(t.db, revokedRow.id);
  const revokedWorker = await createWorkerToken(t.db, { name: "authz-gone", labels: [] });
  await t.db.workerToken.update({ where: { id: revokedWorker.token.id }, data: { revokedAt: new Date() } });
  callers.push(
    { name: "no token", token: null, kind: "none" },
    {
      name: "viewer of A",
      token: await mintToken(t.db, "VIEWER", inA),
      kind: "api",
      role: "VIEWER",
      limited: true,
    },
    {
      name: "operator of A",
      token: await mintToken(t.db, "OPERATOR", inA),
      kind: "api",
      role: "OPERATOR",
      limited: true,
    },
    {
      name: "admin of A",
      token: await mintToken(t.db, "ADMIN", inA),
      kind: "api",
      role: "ADMIN",
      limited: true,
    },
    {
      name: "admin of every project",
      token: await mintToken(t.db, "ADMIN"),
      kind: "api",
      role: "ADMIN",
      limited: false,
    },
    {
      name: "admin of project B",
      token: await mintToken(t.db, "ADMIN", { projects: [projectB!.id] }),
      kind: "api",
      role: "ADMIN",
      limited: true,
      otherProject: true,
    },
    { name: "revoked token", token: revoked, kind: "revoked" },
    {
      name: "expired token",
      token: await mintToken(t.db, "ADMIN", { expiresAt: new Date(Date.now() - 1000) }),
      kind: "expired",
    },
    { name: "worker token", token: worker.secret, kind: "worker" },
    { name: "revoked worker token", token: revokedWorker.secret, kind: "revoked-worker" },
  );
});
afterAll(async () => {
  await server?.close();
});

const RANK: Record<Role, number> = { VIEWER: 0, OPERATOR: 1, ADMIN: 2 };

/** The code the policy says this caller gets, or null when it is allowed. */
function expected(policy: Policy, caller: Caller): "UNAUTHENTICATED" | "FORBIDDEN" | null {
  if (caller.kind === "revoked" || caller.kind === "revoked-worker") return "FORBIDDEN";
  if (caller.kind === "expired") return "UNAUTHENTICATED";
  if (policy.public) return null;
  if (caller.kind === "none") return "UNAUTHENTICATED";
  if (caller.kind === "worker") return policy.worker ? null : "FORBIDDEN";
  if (!policy.role || RANK[caller.role!] < RANK[policy.role]) return "FORBIDDEN";
  if (policy.allProjects && caller.limited) return "FORBIDDEN";
  return null;
}

// ---- operations generated from the schema -------------------------------------------------

const schema = buildSdl(readFileSync(SCHEMA_PATH, "utf8"));
const unwrap = (type: GraphQLOutputType | GraphQLInputType): GraphQLOutputType | GraphQLInputType =>
  type instanceof GraphQLNonNull || type instanceof GraphQLList ? unwrap(type.ofType) : type;

/** A global ID for an argument or input field, from its name: A's rows where one fits. */
function idFor(name: string, field: string): string {
  const byName: Record<string, string> = {
    // Creates go to project A: a caller of B must be answered as if A did not exist.
    projectId: toGlobalId("Project", a.projectId),
    runId: toGlobalId("Run", a.runId),
    moduleId: toGlobalId("Module", a.moduleId),
    architectureId: toGlobalId("Architecture", a.architectureId),
    datasetId: toGlobalId("Dataset", a.datasetId),
  };
  const byField: Record<string, string> = {
    run: byName.runId!,
    node: byName.runId!,
    nodes: byName.runId!,
    architecture: byName.architectureId!,
    dataset: byName.datasetId!,
  };
  return byName[name] ?? byField[field] ?? toGlobalId("Run", "00000000-0000-4000-8000-000000000000");
}

let counter = 0;
/** A value of `type` that passes GraphQL validation (semantics do not matter: auth comes first). */
function valueFor(type: GraphQLInputType, name: string, field: string): unknown {
  if (type instanceof GraphQLNonNull) return valueFor(type.ofType, name, field);
  if (type instanceof GraphQLList) return name === "ids" ? [valueFor(type.ofType, name, field)] : [];
  if (type instanceof GraphQLEnumType) return type.getValues()[0]!.value;
  if (type instanceof GraphQLInputObjectType) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(type.getFields()))
      if (f.type instanceof GraphQLNonNull || f.name.endsWith("Id"))
        out[f.name] = valueFor(f.type, f.name, field);
    return out;
  }
  switch ((type as GraphQLScalarType).name) {
    case "ID":
      return idFor(name, field);
    case "Int":
      return 1;
    case "Float":
      return 1;
    case "Boolean":
      return false;
    case "JSON":
      return {};
    default:
      return `authz-${++counter}`;
  }
}

/** Scalars (and the ids of nested objects) two levels deep: enough to see what an answer leaks. */
function selection(type: GraphQLOutputType, depth: number): string {
  const named = unwrap(type);
  if (named instanceof GraphQLScalarType || named instanceof GraphQLEnumType) return "";
  if (named instanceof GraphQLUnionType) return "{ __typename }";
  const fields = (named as GraphQLObjectType | GraphQLInterfaceType).getFields();
  const parts = ["__typename"];
  for (const f of Object.values(fields)) {
    if (f.args.some((arg) => arg.type instanceof GraphQLNonNull)) continue;
    const inner = unwrap(f.type);
    if (inner instanceof GraphQLScalarType || inner instanceof GraphQLEnumType) parts.push(f.name);
    else if (depth > 0) parts.push(`${f.name} ${selection(f.type, depth - 1)}`);
  }
  return `{ ${parts.join(" ")} }`;
}

function operation(root: RootType, field: GraphQLField<unknown, unknown>) {
  const args = field.args.filter(
    (arg: GraphQLArgument) => arg.type instanceof GraphQLNonNull || arg.name.endsWith("Id"),
  );
  const variables = Object.fromEntries(
    args.map((arg) => [arg.name, valueFor(arg.type, arg.name, field.name)]),
  );
  const decl = args.length ? `(${args.map((arg) => `$${arg.name}: ${arg.type.toString()}`).join(", ")})` : "";
  const use = args.length ? `(${args.map((arg) => `${arg.name}: $${arg.name}`).join(", ")})` : "";
  const keyword = root === "Query" ? "query" : root === "Mutation" ? "mutation" : "subscription";
  return { query: `${keyword}${decl} { ${field.name}${use} ${selection(field.type, 2)} }`, variables };
}

const rootFields = (root: RootType) => {
  const type =
    root === "Query"
      ? schema.getQueryType()
      : root === "Mutation"
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  return Object.values(type?.getFields() ?? {});
};

/** What one call answered: an auth code, or allowed with its body. */
interface Outcome {
  code: string | null;
  body: string;
}

const AUTH_CODES = new Set(["UNAUTHENTICATED", "FORBIDDEN"]);
const authCode = (errors: readonly unknown[] | undefined): string | null =>
  (errors ?? [])
    .map((e) => (e as { extensions?: { code?: string } }).extensions?.code ?? "")
    .find((c) => AUTH_CODES.has(c)) ?? null;

async function callHttp(
  root: RootType,
  field: GraphQLField<unknown, unknown>,
  caller: Caller,
): Promise<Outcome> {
  const { query, variables } = operation(root, field);
  const res = await postGraphQL(server.url, query, variables, { token: caller.token });
  return { code: authCode(res.errors), body: JSON.stringify(res) };
}

/** A subscription's first answer: its first event, its error, or the connection closing (4401/4403). */
async function callWs(field: GraphQLField<unknown, unknown>, caller: Caller): Promise<Outcome> {
  const { query, variables } = operation("Subscription", field);
  const client = wsClient(server.wsUrl, { token: caller.token });
  try {
    return await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => resolve({ code: "TIMEOUT", body: "" }), 5000);
      const done = (o: Outcome) => {
        clearTimeout(timer);
        resolve(o);
      };
      client.subscribe(
        { query, variables },
        {
          // A refusal at subscribe time arrives as one result with errors.
          next: (value) => done({ code: authCode(value.errors), body: JSON.stringify(value) }),
          error: (error) => {
            const close = error as { code?: number; reason?: string };
            if (typeof close.code === "number") {
              const code =
                close.code === 4401
                  ? "UNAUTHENTICATED"
                  : close.code === 4403
                    ? "FORBIDDEN"
                    : `CLOSE_${close.code}`;
              return done({ code, body: String(close.reason) });
            }
            done({ code: authCode(error as readonly unknown[]), body: JSON.stringify(error) });
          },
          complete: () => done({ code: null, body: "" }),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

/** Project A's ids and names in an answer, besides the ids the caller sent (error messages echo them). */
function leaks(body: string, sent: string): string[] {
  const marks = [
    toGlobalId("Run", a.runId),
    toGlobalId("Module", a.moduleId),
    toGlobalId("Architecture", a.architectureId),
    toGlobalId("Dataset", a.datasetId),
    a.runId,
    ...a.names,
  ];
  return marks.filter((m) => body.includes(m) && !sent.includes(m));
}

describe("every root field has a policy", () => {
  it("lists no field without one and no policy without a field", () => {
    for (const root of ["Query", "Mutation", "Subscription"] as const) {
      const fields = rootFields(root).map((f) => f.name);
      expect(
        fields.filter((f) => !FIELD_POLICIES[root][f]),
        root,
      ).toEqual([]);
      expect(
        Object.keys(FIELD_POLICIES[root]).filter((f) => !fields.includes(f)),
        root,
      ).toEqual([]);
    }
  });
});

describe("the matrix: every root field × every caller", () => {
  let cases = 0;
  for (const root of ["Query", "Mutation", "Subscription"] as const) {
    for (const field of rootFields(root)) {
      it(`${root}.${field.name}`, async () => {
        const policy = FIELD_POLICIES[root][field.name]!;
        for (const caller of callers) {
          const outcome =
            root === "Subscription" ? await callWs(field, caller) : await callHttp(root, field, caller);
          const want = expected(policy, caller);
          expect(outcome.code, `${root}.${field.name} as ${caller.name}: ${outcome.body.slice(0, 300)}`).toBe(
            want,
          );
          if (want === null && caller.otherProject) {
            const sent = JSON.stringify(operation(root, field).variables);
            const shown = `${root}.${field.name} as ${caller.name} shows project A: ${outcome.body.slice(0, 300)}`;
            expect(leaks(outcome.body, sent), shown).toEqual([]);
          }
          cases++;
        }
      });
    }
  }
  afterAll(() => {
    console.log(`authorization matrix: ${cases} field × caller cases`);
  });
});

describe("every HTTP route has a policy and is checked for every caller", () => {
  const app = () => server.httpServer.listeners("request")[0] as unknown as Express;

  it("lists no route without a policy", () => {
    const routes = listRoutes(app());
    expect(routes.length).toBeGreaterThanOrEqual(5);
    const keys = Object.keys(ROUTE_POLICIES);
    const unlisted = routes.filter((r) =>
      r.startsWith("* ") ? !keys.some((k) => k.endsWith(r.slice(1))) : !keys.includes(r),
    );
    expect(unlisted).toEqual([]);
  });

  /** One request per policy entry; the answer's status tells refused from allowed. */
  const request = (key: string, caller: Caller): [string, RequestInit] => {
    const base = server.url.replace(/\/graphql$/, "");
    const headers: Record<string, string> = caller.token ? { authorization: `Bearer ${caller.token}` } : {};
    switch (key) {
      case "POST /graphql":
        return [
          `${base}/graphql`,
          {
            method: "POST",
            headers: { ...headers, "content-type": "application/json" },
            body: JSON.stringify({ query: "{ health { ok } }" }),
          },
        ];
      case "GET /graphql":
        return [
          `${base}/graphql?query=${encodeURIComponent("{ health { ok } }")}`,
          { headers: { ...headers, "apollo-require-preflight": "1" } },
        ];
      case "GET /healthz":
        return [`${base}/healthz`, { headers }];
      case "GET /metrics":
        return [`${base}/metrics`, { headers }];
      case "GET /ui":
        return [`${base}/ui/`, { headers }];
      case "GET /ui/assets/:file":
        // A file the build wrote (npm install builds the dashboard: scripts/build-ui.mjs).
        return [`${base}/ui/assets/${readdirSync(join(DEFAULT_DASHBOARD_DIR, "assets"))[0]}`, { headers }];
      case "GET /artifacts/:sha256":
        return [`${base}/artifacts/${a.sha256}`, { headers }];
      case "PUT /artifacts/:sha256":
        return [`${base}/artifacts/${a.sha256}`, { method: "PUT", headers, body: "project A's checkpoint" }];
      case "GET /datasets/:dataset/shards/:count/:index":
        return [`${base}/datasets/${a.datasetId}/shards/1/0`, { headers }];
      default:
        throw new Error(`the matrix has no request for route ${key}: add one`);
    }
  };

  for (const key of Object.keys(ROUTE_POLICIES)) {
    it(key, async () => {
      const policy = ROUTE_POLICIES[key]!;
      for (const caller of callers) {
        const [url, init] = request(key, caller);
        const response = await fetch(url, init);
        const text = await response.text();
        let want = expected(policy, caller);
        let code: string | null = null;
        if (key.endsWith(" /graphql")) {
          // GraphQL answers 200 with the field's error code.
          const body = JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] };
          code = body.errors?.[0]?.extensions?.code ?? null;
        } else if ([401, 403, 404].includes(response.status)) {
          code = (JSON.parse(text) as { code?: string }).code ?? `HTTP_${response.status}`;
        }
        // A's artifact to a caller of another project: as if it did not exist.
        if (want === null && caller.otherProject && policy.resource === "artifact")
          want = "NOT_FOUND" as never;
        expect(code, `${key} as ${caller.name}: ${response.status} ${text.slice(0, 200)}`).toBe(want);
      }
    });
  }
});

describe("an open subscription", () => {
  it("ends with FORBIDDEN once its token is revoked", async () => {
    const secret = await mintToken(t.db, "VIEWER", { name: "authz-watcher" });
    const client = wsClient(server.wsUrl, { token: secret });
    const seen: unknown[] = [];
    const ended = new Promise<unknown>((resolve) => {
      client.subscribe(
        {
          query: `subscription ($id: ID!) { runEvents(runId: $id) { seq } }`,
          variables: { id: toGlobalId("Run", a.runId) },
        },
        { next: (v) => seen.push(v), error: resolve, complete: () => resolve("complete") },
      );
    });
    await expect.poll(() => seen.length).toBe(1);
    const row = await t.db.apiToken.findUniqueOrThrow({ where: { name: "authz-watcher" } });
    await revokeApiToken(t.db, row.id);
    const error = await ended;
    expect(error).not.toBe("complete");
    // Pushed (the server closes the connection: 4403) or polled (the re-check's error), whichever
    // comes first here; test/api/token-revocation.test.ts shows the push alone.
    const code =
      (error as { code?: number }).code === 4403
        ? "FORBIDDEN"
        : (error as { extensions?: { code?: string } }[])[0]?.extensions?.code;
    expect(code).toBe("FORBIDDEN");
    await client.dispose();
  });
});

describe("an open subscription, re-check alone", () => {
  it("ends with FORBIDDEN from the token re-check when no revocation notice comes; nothing after the error", async () => {
    const secret = await mintToken(t.db, "VIEWER", { name: "authz-watcher-recheck" });
    const { run } = await createRunRows(t.db);
    await appendRunEvents(t.db, run.id, [progressEvent(0, 1)]);
    const client = wsClient(server.wsUrl, { token: secret });
    const seen: unknown[] = [];
    let after = 0;
    let errorAt = -1;
    const ended = new Promise<unknown>((resolve) => {
      client.subscribe(
        {
          query: `subscription ($id: ID!) { runEvents(runId: $id) { seq } }`,
          variables: { id: toGlobalId("Run", run.id) },
        },
        {
          next: (v) => {
            seen.push(v);
            if (errorAt >= 0) after++;
          },
          error: (e) => {
            errorAt = seen.length;
            resolve(e);
          },
          complete: () => resolve("complete"),
        },
      );
    });
    try {
      await expect.poll(() => seen.length).toBe(1);
      // Revoked behind the API's back (no NOTIFY): only the re-check (every 100 ms here) sees it.
      await t.db.apiToken.update({
        where: { name: "authz-watcher-recheck" },
        data: { revokedAt: new Date() },
      });
      const error = await ended;
      expect((error as { extensions?: { code?: string } }[])[0]?.extensions?.code).toBe("FORBIDDEN");
      await appendRunEvents(t.db, run.id, [{ type: "LOG", level: "INFO", message: "after the refusal" }]);
      await new Promise((r) => setTimeout(r, 300));
      expect(after).toBe(0);
    } finally {
      await client.dispose();
    }
  });
});

describe("cross-project inputs", () => {
  const callerNamed = (name: string) => callers.find((c) => c.name === name)!;
  const vit = { imageSize: 16, patchSize: 4, width: 32, depth: 4, heads: 4, numClasses: 10 };
  /** Each create with valid-looking inputs (files outside the data roots are refused too). */
  const creates = (): [string, string, string, Record<string, unknown>][] => [
    ["createArchitecture", "CreateArchitectureInput", "architecture", { name: "x-arch", ...vit }],
    [
      "registerDataset",
      "RegisterDatasetInput",
      "dataset",
      {
        name: "x-data",
        spec: { format: "synthetic", numClasses: 10, imageSize: 16, channels: 3, length: 8 },
      },
    ],
    [
      "registerMetaModel",
      "RegisterMetaModelInput",
      "metaModel",
      { name: "x-meta", weightsPath: "/x", heads: 4 },
    ],
    [
      "importMetaModel",
      "ImportMetaModelInput",
      "metaModel",
      { name: "x-import", path: "/x", heads: 4, modules: 4 },
    ],
    [
      "startRun",
      "StartRunInput",
      "run",
      {
        kind: "E2E",
        architectureId: toGlobalId("Architecture", a.architectureId),
        datasetId: toGlobalId("Dataset", a.datasetId),
      },
    ],
  ];
  const call = async (caller: Caller, [field, type, object, input]: ReturnType<typeof creates>[number]) => {
    const query = `mutation ($input: ${type}!) { ${field}(input: $input) { ${object} { id } userErrors { field message code } } }`;
    const res = await postGraphQL<Record<string, { userErrors: { field: string[]; code: string }[] }>>(
      server.url,
      query,
      { input },
      { token: caller.token },
    );
    expect(res.errors, `${field} as ${caller.name}`).toBeUndefined();
    return { body: JSON.stringify(res), userErrors: res.data![field]!.userErrors };
  };
  const rowsOfA = () =>
    Promise.all([
      t.db.architecture.count({ where: { projectId: a.projectId } }),
      t.db.dataset.count({ where: { projectId: a.projectId } }),
      t.db.metaModel.count({ where: { projectId: a.projectId } }),
      t.db.run.count({ where: { projectId: a.projectId } }),
      t.db.artifact.count({ where: { projectId: a.projectId } }),
    ]);

  it("a token of project B names project A in every create: not found, nothing of A shown, nothing created", async () => {
    const before = await rowsOfA();
    const b = callerNamed("admin of project B");
    for (const create of creates()) {
      const input = { ...create[3], projectId: toGlobalId("Project", a.projectId) };
      const { body, userErrors } = await call(b, [create[0], create[1], create[2], input]);
      expect(userErrors, create[0]).toContainEqual(
        expect.objectContaining({ field: ["input", "projectId"], code: "NOT_FOUND" }),
      );
      expect(leaks(body, JSON.stringify(input)), create[0]).toEqual([]);
    }
    expect(await rowsOfA()).toEqual(before);
  });

  it("startRun into B with A's architecture and dataset: WRONG_PROJECT for an admin of both, NOT_FOUND for B's token", async () => {
    const input = { ...creates()[4]![3], projectId: toGlobalId("Project", projectBId) };
    const startRun = (caller: Caller) => call(caller, ["startRun", "StartRunInput", "run", input]);
    const both = await startRun(callerNamed("admin of every project"));
    expect(both.userErrors.filter((e) => e.code === "WRONG_PROJECT").map((e) => e.field)).toEqual([
      ["input", "architectureId"],
      ["input", "datasetId"],
    ]);
    const onlyB = await startRun(callerNamed("admin of project B"));
    expect(onlyB.userErrors.filter((e) => e.code === "NOT_FOUND").map((e) => e.field)).toEqual([
      ["input", "architectureId"],
      ["input", "datasetId"],
    ]);
    expect(await t.db.run.count({ where: { projectId: projectBId } })).toBe(0);
  });

  it("PUT /artifacts into project A with B's token: 404 like a project that does not exist", async () => {
    const before = await rowsOfA();
    const base = server.url.replace(/\/graphql$/, "");
    const body = "bytes B wants to put into A";
    const sha = createHash("sha256").update(body).digest("hex");
    const put = (project: string) =>
      fetch(`${base}/artifacts/${sha}?project=${project}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${callerNamed("admin of project B").token}` },
        body,
      });
    const intoA = await put(toGlobalId("Project", a.projectId));
    const nowhere = await put(toGlobalId("Project", "00000000-0000-4000-8000-00000000dead"));
    expect([intoA.status, nowhere.status]).toEqual([404, 404]);
    const [x, y] = [(await intoA.json()) as { error: string }, (await nowhere.json()) as { error: string }];
    expect(x.error.replace(/"[^"]+"/, "<id>")).toBe(y.error.replace(/"[^"]+"/, "<id>"));
    expect(await rowsOfA()).toEqual(before);
  });
});
