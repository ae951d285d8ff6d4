/**
 * Hostile input against a real server (HTTP with keep-alive and graphql-ws over real sockets,
 * real PostgreSQL): fast-check generates malformed and hostile requests — wrong types, huge
 * lists and numbers, deep and wide queries, aliases, path traversal strings, invalid and foreign
 * global IDs, oversized bodies, garbage JSON, unknown routes and methods — and every answer must
 * hold:
 *   - no 5xx and no WebSocket close for an internal error (4500 / 1011); closes for a malformed
 *     (4400) or oversized (1009) message are the protocol's refusals;
 *   - every refusal carries a code (`code` on HTTP errors, `extensions.code` on GraphQL errors,
 *     `code` on userErrors), and every mutation here is refused;
 *   - no stack trace and no server path in any answer;
 *   - no unhandled rejection in the process (the server runs in it);
 *   - the database unchanged: row counts and a checksum of every table, before and after.
 *
 * HOSTILE_RUNS (default 10,000) is the number of requests; HOSTILE_SEED replays a failure.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { toGlobalId } from "../../src/api/global-id.ts";
import { LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { CREATE_ARCHITECTURE, REGISTER_DATASET, START_RUN, useApiServer } from "./support.ts";

const RUNS = Number(process.env.HOSTILE_RUNS ?? 10_000);
const SEED = process.env.HOSTILE_SEED ? Number(process.env.HOSTILE_SEED) : undefined;
const BATCH = 40;
const MAX_BODY = 32 * 1024;

const t = useTestDatabase();
const dir = mkdtempSync(join(tmpdir(), "incubator-hostile-"));
const root = join(dir, "data");
mkdirSync(root);
const api = useApiServer(t, {
  artifacts: new LocalArtifactStore(join(dir, "artifacts")),
  shardCacheDir: join(dir, "shards"),
  dataRoots: [root],
  limits: {
    maxBodyBytes: MAX_BODY,
    maxWsPayloadBytes: MAX_BODY,
    maxSubscriptionsPerConnection: 4,
    // One admin token sends everything, as fast as it can: not what the per-token rate limit is about.
    rateLimitPerSecond: 1_000_000,
    rateLimitBurst: 1_000_000,
  },
});
let origin: string;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const ids: Record<"architecture" | "dataset" | "run" | "module", string> = {
  architecture: "",
  dataset: "",
  run: "",
  module: "",
};

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  origin = api.server.url.replace(/\/graphql$/, "");
  // Some real rows, so valid-looking and foreign IDs point at something.
  const arch = await api.gql<{ createArchitecture: { architecture: { id: string } } }>(CREATE_ARCHITECTURE, {
    input: {
      name: "hostile-arch",
      imageSize: 8,
      patchSize: 4,
      width: 8,
      depth: 2,
      heads: 2,
      numClasses: 4,
      modules: 2,
    },
  });
  const ds = await api.gql<{ registerDataset: { dataset: { id: string } } }>(REGISTER_DATASET, {
    input: { name: "hostile-data", spec: { format: "synthetic", numClasses: 4, imageSize: 8, length: 16 } },
  });
  ids.architecture = arch.createArchitecture.architecture.id;
  ids.dataset = ds.registerDataset.dataset.id;
  const run = await api.gql<{ startRun: { run: { id: string; modules: { id: string }[] } } }>(START_RUN, {
    input: { kind: "INCUBATION", architectureId: ids.architecture, datasetId: ids.dataset },
  });
  ids.run = run.startRun.run.id;
  ids.module = run.startRun.run.modules[0]!.id;
});
afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Row count and md5 of every table's rows, in a stable order. A token's `last_used_at` is
 * bookkeeping the requests are meant to update (at most once a minute), not a change they make:
 * it is left out.
 */
const BOOKKEEPING: Record<string, string> = { api_token: "last_used_at" };

async function snapshot(): Promise<Record<string, string>> {
  const tables = await t.db.$queryRawUnsafe<{ table_name: string }[]>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { table_name } of tables) {
    const [row] = await t.db.$queryRawUnsafe<{ n: bigint; sum: string | null }[]>(
      BOOKKEEPING[table_name]
        ? `SELECT count(*) AS n, md5(coalesce(string_agg((to_jsonb(x) - '${BOOKKEEPING[table_name]}')::text, '|' ORDER BY (to_jsonb(x) - '${BOOKKEEPING[table_name]}')::text), '')) AS sum FROM "${table_name}" x`
        : `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS sum FROM "${table_name}" x`,
    );
    out[table_name] = `${row!.n}:${row!.sum}`;
  }
  return out;
}

// ---- what the generators draw from ------------------------------------------------------------

const hugeInt = fc.oneof(
  fc.integer(),
  fc.constantFrom(2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 53, 1e308, -1e308, 0, -1, 0.5),
);
const anyJson = fc.jsonValue({ maxDepth: 4 });
const traversal = fc.oneof(
  fc.constantFrom(
    "/etc/passwd",
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "/proc/self/environ",
    "/etc/",
    "/",
    "",
    "\u0000",
    "/etc/passwd\u0000.safetensors",
    "~/.ssh/id_rsa",
    "C:\\Windows\\win.ini",
    "x".repeat(5000),
    "/usr/share/datasets/../../../etc/shadow",
  ),
  fc.string({ maxLength: 40 }).map((s) => `../${s}`),
  fc.string({ maxLength: 40 }).map((s) => `/${s}`),
);
/** Root-based traversal goes only where a string is expected (it would be echoed by type errors). */
const rootTraversal = fc.constantFrom(`${root}/../../../etc/passwd`, `${root}/..`, root, `${root}/missing`);
const foreignId = () =>
  fc.oneof(
    fc.constantFrom(
      ids.architecture,
      ids.dataset,
      ids.run,
      toGlobalId("Module", ids.module),
      toGlobalId("Run", "00000000-0000-0000-0000-000000000000"),
      toGlobalId("Run", "not-a-uuid"),
      toGlobalId("Nope", ids.module),
      "",
      "====",
      "UnVuOg",
    ),
    fc.string({ maxLength: 60 }),
    fc.base64String({ maxLength: 80 }),
  );
const badName = fc.constantFrom("", "   ", "n".repeat(300));

interface Req {
  transport: "http" | "ws";
  /** A GraphQL operation, or for HTTP a raw request. */
  query?: string;
  variables?: unknown;
  raw?: { method: string; path: string; body?: string; contentType?: string };
  /** Mutations in this test are all refused. */
  mutation?: string;
}

/** A mutation with `input`, asking for its payload's `result` field and userErrors. */
const mutationReq = (name: string, result: string) => (input: unknown) =>
  gqlReq(
    `mutation ($input: ${name[0]!.toUpperCase()}${name.slice(1)}Input!) { ${name}(input: $input) { ${result} userErrors { field message code } } }`,
    { input },
    name,
  );

const gqlReq = (query: string, variables?: unknown, mutation?: string): Req => ({
  transport: "http",
  query,
  variables,
  ...(mutation ? { mutation } : {}),
});

const nested = (depth: number) => {
  let body = "id";
  for (let i = 0; i < depth; i++) body = `${i % 2 === 0 ? "modules" : "run"} { ${body} }`;
  return `query ($id: ID!) { run(id: $id) { ${body} } }`;
};

function requests(): fc.Arbitrary<Req> {
  const mutations = {
    createArchitecture: fc
      .record({
        name: badName,
        imageSize: hugeInt,
        patchSize: hugeInt,
        width: hugeInt,
        depth: hugeInt,
        heads: hugeInt,
        numClasses: hugeInt,
        modules: fc.option(hugeInt),
        moduleSplit: fc.option(fc.array(hugeInt, { maxLength: 300 })),
        mlpRatio: fc.option(fc.double({ noNaN: true })),
      })
      .map(mutationReq("createArchitecture", "architecture { id }")),
    registerDataset: fc
      .record({
        name: fc.oneof(badName, fc.constant("ok-name")),
        spec: fc.oneof(
          anyJson,
          fc.record({
            format: fc.constantFrom("idx", "cifar10", "cifar100", "image-folder"),
            path: fc.oneof(traversal, rootTraversal),
          }),
          fc.record({
            format: fc.constant("idx"),
            images: fc.oneof(traversal, rootTraversal),
            labels: traversal,
          }),
          fc.record({
            format: fc.constant("synthetic"),
            length: fc.constantFrom(0, -1, 1e9, 2 ** 31, 1e308, 0.5),
            numClasses: hugeInt,
            imageSize: hugeInt,
          }),
        ),
      })
      .map(mutationReq("registerDataset", "dataset { id }")),
    registerMetaModel: fc
      .record({ name: fc.constant("m"), weightsPath: fc.oneof(traversal, rootTraversal), heads: hugeInt })
      .map(mutationReq("registerMetaModel", "metaModel { id }")),
    importMetaModel: fc
      .record({
        name: fc.constant("m"),
        path: fc.oneof(traversal, rootTraversal),
        heads: hugeInt,
        modules: hugeInt,
        blocks: fc.option(fc.array(hugeInt, { maxLength: 50 })),
        numClasses: fc.option(hugeInt),
      })
      .map(mutationReq("importMetaModel", "metaModel { id }")),
    startRun: fc
      .record({
        kind: fc.constantFrom("INCUBATION", "E2E", "META_PRETRAIN"),
        // never valid: a dataset's ID where the architecture's belongs, or junk
        architectureId: fc
          .oneof(fc.constant(ids.dataset), foreignId())
          .filter((id) => id !== ids.architecture),
        datasetId: fc.oneof(fc.constant(ids.dataset), foreignId()),
        metaModelId: fc.option(foreignId()),
        recipe: fc.oneof(fc.constantFrom("deit", "deit3"), fc.string({ maxLength: 20 })),
        overrides: fc.oneof(
          anyJson,
          fc.record({
            batchSize: hugeInt,
            steps: fc.record({ e2e: hugeInt, modular: hugeInt }),
            baseLr: fc.double(),
            augment: fc.oneof(anyJson, fc.record({ outputSize: hugeInt })),
          }),
        ),
        placement: fc.option(
          fc.array(
            fc.record({ moduleIndex: fc.option(hugeInt), labels: fc.array(fc.string(), { maxLength: 40 }) }),
            {
              maxLength: 300,
            },
          ),
        ),
        priority: hugeInt,
        seed: hugeInt,
      })
      .map(mutationReq("startRun", "run { id }")),
    cancelRun: foreignId()
      .filter((id) => id !== ids.run)
      .map((runId) => mutationReq("cancelRun", "run { id }")({ runId })),
    retryModule: foreignId().map((moduleId) => mutationReq("retryModule", "module { id }")({ moduleId })),
  };
  const wrongTypes = fc
    .record({
      mutation: fc.constantFrom(...Object.keys(mutations)),
      input: anyJson,
    })
    .map(({ mutation, input }) => mutationReq(mutation, "")(input));
  const queries = fc.oneof(
    foreignId().map((id) => gqlReq("query ($id: ID!) { node(id: $id) { id } }", { id })),
    foreignId().map((id) => gqlReq("query ($id: ID!) { run(id: $id) { id state modules { id } } }", { id })),
    fc
      .array(foreignId(), { minLength: 90, maxLength: 400 })
      .map((list) => gqlReq("query ($ids: [ID!]!) { nodes(ids: $ids) { id } }", { ids: list })),
    fc
      .record({ first: hugeInt, last: fc.option(hugeInt), after: fc.option(fc.string()) })
      .map((args) =>
        gqlReq(
          "query ($first: Int, $last: Int, $after: String) { runs(first: $first, last: $last, after: $after) { nodes { id modules { jobs { id } } } } }",
          args,
        ),
      ),
    fc.integer({ min: 13, max: 60 }).map((d) => gqlReq(nested(d), { id: ids.run })),
    fc
      .integer({ min: 31, max: 400 })
      .map((n) =>
        gqlReq(
          `{ ${Array.from({ length: n }, (_, i) => `a${i}: runs(first: 100) { nodes { modules { jobs { id } } } }`).join(" ")} }`,
        ),
      ),
    fc.integer({ min: 200, max: 3000 }).map((n) => gqlReq(`{ health { ${"ok ".repeat(n)} } }`)),
    fc
      .integer({ min: 51, max: 200 })
      .map((n) => gqlReq(`{ health { ok ${"@skip(if: false) ".repeat(n)} } }`)),
    fc.string({ maxLength: 200 }).map((q) => gqlReq(q)),
    fc.record({ count: hugeInt, seed: hugeInt }).map((v) =>
      gqlReq(
        "query ($id: ID!, $count: Int!, $seed: Int) { dataset(id: $id) { shards(count: $count, seed: $seed) { size } } }",
        {
          id: ids.dataset,
          ...v,
        },
      ),
    ),
    anyJson.map((variables) => gqlReq("query ($x: Int!) { health { ok } }", variables)),
  );
  const json = "application/json";
  const raw = fc.oneof(
    fc
      .string({ maxLength: 300 })
      .map((body) => ({ method: "POST", path: "/graphql", body, contentType: json })),
    fc.uint8Array({ maxLength: 300 }).map((b) => ({
      method: "POST",
      path: "/graphql",
      body: Buffer.from(b).toString("latin1"),
      contentType: json,
    })),
    fc.integer({ min: MAX_BODY + 1, max: 3 * MAX_BODY }).map((n) => ({
      method: "POST",
      path: "/graphql",
      body: JSON.stringify({ query: `{ health { ok } } #${"x".repeat(n)}` }),
      contentType: json,
    })),
    fc
      .constantFrom("[]", "[{}]", "null", "1", '"x"', '{"query": 1}', '{"query": null}', '{"variables": "x"}')
      .map((body) => ({ method: "POST", path: "/graphql", body, contentType: json })),
    fc.record({
      method: fc.constantFrom("GET", "PUT", "DELETE", "PATCH", "POST", "OPTIONS"),
      path: fc.oneof(
        fc.constantFrom(
          "/",
          "/graphql",
          "/healthz",
          "/metrics",
          "/artifacts/",
          "/../../etc/passwd",
          "/datasets/x/shards/1/0",
        ),
        fc.string({ maxLength: 60 }).map((s) => `/${encodeURIComponent(s)}`),
        fc
          .string({ unit: fc.constantFrom(..."0123456789abcdef"), maxLength: 70 })
          .map((s) => `/artifacts/${s}`),
        fc
          .tuple(foreignId(), hugeInt, hugeInt)
          .map(([id, c, i]) => `/datasets/${encodeURIComponent(id)}/shards/${c}/${i}?seed=${c}&split=${i}`),
      ),
      body: fc.option(fc.string({ maxLength: 100 }), { nil: undefined }),
      contentType: fc.constantFrom(
        json,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
      ),
    }),
    fc.string({ maxLength: 100 }).map((q) => ({
      method: "GET",
      path: `/graphql?query=${encodeURIComponent(q)}`,
    })),
  );
  const http = fc.oneof(
    { weight: 3, arbitrary: fc.oneof(...Object.values(mutations)) },
    { weight: 1, arbitrary: wrongTypes },
    { weight: 3, arbitrary: queries },
    { weight: 2, arbitrary: raw.map((r): Req => ({ transport: "http", raw: r as Req["raw"] & object })) },
  );
  const wsOps = fc.oneof(
    fc.oneof(...Object.values(mutations)),
    queries,
    // valid intervals stay short: a stream is completed after its first tick
    fc
      .record({
        intervalMs: fc.oneof(
          hugeInt.filter((n) => n < 10 || n > 50),
          fc.integer({ min: 10, max: 50 }),
        ),
        count: fc.option(hugeInt),
      })
      .map((v) =>
        gqlReq("subscription ($i: Int, $c: Int) { serverTime(intervalMs: $i, count: $c) { tick } }", {
          i: v.intervalMs,
          c: v.count,
        }),
      ),
    fc.record({ runId: foreignId().filter((id) => id !== ids.run), afterSeq: hugeInt }).map((v) =>
      gqlReq("subscription ($r: ID!, $a: Int) { runEvents(runId: $r, afterSeq: $a) { seq } }", {
        r: v.runId,
        a: v.afterSeq,
      }),
    ),
  );
  return fc.oneof(
    { weight: 4, arbitrary: http },
    { weight: 1, arbitrary: wsOps.map((r): Req => ({ ...r, transport: "ws" })) },
  );
}

// ---- sending and checking ---------------------------------------------------------------------

const problems: string[] = [];
const SERVER_PATHS = [resolve("."), dir, "node_modules", "/src/api/", "/src/platform/"];
const STACK = /\n\s+at |\bat [\w.<>]+ \(.*:\d+:\d+\)/;

function checkText(where: string, text: string, sent: string): void {
  if (STACK.test(text)) problems.push(`${where}: a stack trace: ${text.slice(0, 300)}`);
  for (const p of SERVER_PATHS) {
    if (text.includes(p) && !sent.includes(p))
      problems.push(`${where}: a server path (${p}): ${text.slice(0, 300)}`);
  }
}

type GraphQLBody = {
  data?: Record<string, { userErrors?: { code?: unknown }[] } | null> | null;
  errors?: { extensions?: { code?: unknown } }[];
};

function checkGraphQL(where: string, body: GraphQLBody, mutation?: string): void {
  for (const e of body.errors ?? []) {
    if (typeof e.extensions?.code !== "string")
      problems.push(`${where}: an error without a code: ${JSON.stringify(e)}`);
  }
  const payload = mutation ? body.data?.[mutation] : undefined;
  if (mutation && !body.errors?.length) {
    if (!payload?.userErrors?.length)
      problems.push(`${where}: a mutation was not refused: ${JSON.stringify(body)}`);
  }
  for (const u of payload?.userErrors ?? []) {
    if (typeof u.code !== "string")
      problems.push(`${where}: a userError without a code: ${JSON.stringify(u)}`);
  }
}

let sent = 0;

const timings = new Map<string, [number, number]>();
function timed(key: string, ms: number) {
  const [n, total] = timings.get(key) ?? [0, 0];
  timings.set(key, [n + 1, total + ms]);
}

async function sendHttp(req: Req): Promise<void> {
  const t0 = performance.now();
  const r = req.raw ?? {
    method: "POST",
    path: "/graphql",
    body: JSON.stringify({ query: req.query, variables: req.variables }),
    contentType: "application/json",
  };
  const withBody = r.body !== undefined && r.method !== "GET" && r.method !== "HEAD";
  const response = await fetch(`${origin}${r.path}`, {
    method: r.method,
    headers: {
      ...(r.contentType ? { "content-type": r.contentType } : {}),
      // Apollo's CSRF prevention wants this on GETs that are not preflighted.
      "apollo-require-preflight": "1",
      // An admin's token: the hostile input must reach the resolvers, not stop at the auth check.
      authorization: `Bearer ${api.token}`,
    },
    ...(withBody ? { body: r.body } : {}),
  });
  sent++;
  const text = await response.text();
  timed(
    req.mutation ?? req.query?.slice(0, 40) ?? `${r.method} ${r.path.slice(0, 20)}`,
    performance.now() - t0,
  );
  const where = `HTTP ${r.method} ${r.path.slice(0, 80)} → ${response.status}`;
  if (response.status >= 500) problems.push(`${where}: ${text.slice(0, 300)}`);
  checkText(where, text, r.body ?? r.path);
  // The one route whose success is not JSON: Prometheus' text format (errors there are JSON).
  const prometheus = response.headers.get("content-type")?.startsWith("text/plain; version=0.0.4");
  if (response.ok && r.path.split("?")[0] === "/metrics" && prometheus) return;
  if (response.status === 204 || text === "") {
    if (response.status >= 400) problems.push(`${where}: an empty refusal`);
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    problems.push(`${where}: not JSON: ${text.slice(0, 200)}`);
    return;
  }
  if (response.status >= 400 && typeof (body as { code?: unknown }).code !== "string") {
    if (!Array.isArray((body as GraphQLBody).errors))
      problems.push(`${where}: no code: ${text.slice(0, 200)}`);
  }
  if (r.path.startsWith("/graphql")) checkGraphQL(where, body as GraphQLBody, req.mutation);
}

/** One graphql-ws connection, reopened when the server closes it (an oversized message: 1009). */
class WsConnection {
  private socket: WebSocket | undefined;
  private opening: Promise<void> | undefined;
  private waiting = new Map<string, (messages: { type: string; payload?: unknown }[]) => void>();
  private collected = new Map<string, { type: string; payload?: unknown }[]>();
  private next = 0;
  closeCodes: number[] = [];

  constructor(private readonly url: string) {}

  private open(): Promise<void> {
    const socket = new WebSocket(this.url, "graphql-transport-ws");
    this.socket = socket;
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { id?: string; type: string; payload?: unknown };
      if (!message.id) return;
      const list = this.collected.get(message.id) ?? [];
      list.push(message);
      this.collected.set(message.id, list);
      // one answer is enough: stop streams so the connection stays under its limit
      if (message.type === "next") socket.send(JSON.stringify({ id: message.id, type: "complete" }));
      // The first answer (next, error or complete) settles the operation.
      const resolveIt = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      resolveIt?.(list);
    });
    socket.on("close", (code) => {
      this.closeCodes.push(code);
      for (const [, resolveIt] of this.waiting) resolveIt([{ type: "closed", payload: code }]);
      this.waiting.clear();
    });
    return new Promise<void>((resolveIt, reject) => {
      socket.once("open", () =>
        socket.send(
          JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${api.token}` } }),
        ),
      );
      socket.on("message", (data) => {
        if ((JSON.parse(String(data)) as { type: string }).type === "connection_ack") resolveIt();
      });
      socket.once("error", reject);
    });
  }

  async run(query: string, variables: unknown): Promise<{ type: string; payload?: unknown }[]> {
    if (this.socket?.readyState !== WebSocket.OPEN) {
      if (
        !this.opening ||
        this.socket?.readyState === WebSocket.CLOSED ||
        this.socket?.readyState === WebSocket.CLOSING
      ) {
        this.opening = this.open();
      }
      await this.opening;
    }
    const id = String(this.next++);
    return new Promise((resolveIt) => {
      this.waiting.set(id, resolveIt);
      this.socket!.send(JSON.stringify({ id, type: "subscribe", payload: { query, variables } }));
    });
  }

  close(): void {
    this.socket?.close();
  }
}

async function sendWs(connection: WsConnection, req: Req): Promise<void> {
  const t0 = performance.now();
  const messages = await connection.run(req.query ?? "", req.variables);
  timed(`ws ${req.mutation ?? req.query?.slice(0, 40)}`, performance.now() - t0);
  sent++;
  const where = `WS ${req.query?.slice(0, 80)}`;
  for (const m of messages) {
    const text = JSON.stringify(m);
    checkText(where, text, JSON.stringify(req.variables ?? null) + (req.query ?? ""));
    // graphql-ws closes on a malformed message (4400: variables that are not an object) and ws
    // on an oversized one (1009): refusals with a code, the protocol's own.
    if (m.type === "closed" && m.payload !== 1009 && m.payload !== 4400)
      problems.push(`${where}: the connection closed (${m.payload})`);
    if (m.type === "error") {
      for (const e of m.payload as { extensions?: { code?: unknown } }[]) {
        if (typeof e.extensions?.code !== "string")
          problems.push(`${where}: an error without a code: ${text}`);
      }
    }
    if (m.type === "next") checkGraphQL(where, m.payload as GraphQLBody, req.mutation);
  }
}

/** Garbage frames on their own sockets: closed as bad requests (4400, 1009), never 4500/1011. */
async function garbageFrames(frames: string[]): Promise<void> {
  for (const frame of frames) {
    const socket = new WebSocket(api.server.wsUrl, "graphql-transport-ws");
    await new Promise((r) => socket.once("open", r));
    const closed = new Promise<number>((r) => socket.once("close", r));
    socket.send(
      JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${api.token}` } }),
    );
    socket.send(frame);
    const timer = setTimeout(() => socket.close(), 500);
    const code = await closed;
    clearTimeout(timer);
    sent++;
    if (code === 4500 || code === 1011) problems.push(`WS garbage ${frame.slice(0, 60)} → close ${code}`);
  }
}

describe(`hostile input (${RUNS} requests)`, () => {
  it("never gets a 5xx, an uncoded refusal, a stack, a server path, or a changed database", {
    timeout: 300_000,
  }, async () => {
    const before = await snapshot();
    const started = Date.now();
    const connections = Array.from({ length: 4 }, () => new WsConnection(api.server.wsUrl));
    const garbage = fc.sample(
      fc.oneof(
        fc.string({ maxLength: 100 }),
        fc.constant(JSON.stringify({ type: "subscribe", id: "1", payload: { query: 1 } })),
        fc.constant(JSON.stringify({ type: "nope" })),
        fc.constant("x".repeat(MAX_BODY + 10)),
      ),
      { numRuns: 20, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
    await garbageFrames(garbage);
    const batches = Math.max(1, Math.ceil((RUNS - garbage.length) / BATCH));
    await fc.assert(
      fc.asyncProperty(fc.array(requests(), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        let k = 0;
        await Promise.all(
          batch.map((req) =>
            req.transport === "ws" ? sendWs(connections[k++ % connections.length]!, req) : sendHttp(req),
          ),
        );
        return true;
      }),
      { numRuns: batches, endOnFailure: true, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
    for (const c of connections) c.close();
    const seconds = (Date.now() - started) / 1000;
    if (process.env.HOSTILE_PROFILE)
      console.log(
        [...timings]
          .sort((a, b) => b[1][1] - a[1][1])
          .slice(0, 15)
          .map(([k, [n, ms]]) => `${k}: ${n} × ${(ms / n).toFixed(1)} ms`)
          .join("\n"),
      );
    console.log(`hostile: ${sent} requests in ${seconds.toFixed(1)} s (${(sent / seconds).toFixed(0)}/s)`);
    expect([...new Set(problems.map((p) => p.replace(/\d+/g, "N")))].slice(0, 20)).toEqual([]);
    expect(unhandled).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(RUNS);
    expect(await snapshot()).toEqual(before);
    expect(connections.flatMap((c) => c.closeCodes).filter((code) => code === 4500 || code === 1011)).toEqual(
      [],
    );
  });
});
