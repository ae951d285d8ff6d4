/**
 * One DataLoader per request: listing runs with their related rows costs one query per relation,
 * not one per run. Counted on the SQL the server's own Prisma client sends.
 */
import { PrismaPg } from "@prisma/adapter-pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import { type ApiServer, startApiServer } from "../../src/api/server.ts";
import { PrismaClient } from "../../src/generated/prisma/client.ts";
import type { Db } from "../../src/platform/db/client.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent } from "../helpers/events.ts";
import { postGraphQL, useToken } from "../helpers/graphql.ts";
import { START_RUN, unique } from "./support.ts";

const t = useTestDatabase();
/** A 2-block, 2-module architecture (rows only: nothing trains here). */
const TWO_BLOCKS = {
  imageSize: 16,
  patchSize: 4,
  width: 32,
  depth: 2,
  heads: 2,
  numClasses: 10,
  moduleSplit: [1, 1],
};
let server: ApiServer;
let failing: ApiServer;
let db: PrismaClient<"query">;
const queries: string[] = [];

beforeAll(async () => {
  db = new PrismaClient({
    adapter: new PrismaPg({ connectionString: t.url }),
    log: [{ emit: "event", level: "query" }],
  });
  db.$on("query", (event) => {
    queries.push(event.query);
  });
  const common = {
    databaseUrl: t.url,
    logger: pino({ level: "silent" }),
    port: 0,
    host: "127.0.0.1",
    auth: "tokens" as const,
  };
  server = await startApiServer({ ...common, db: db as unknown as Db });
  failing = await startApiServer({
    ...common,
    db: t.db,
    dispatcher: {
      runCreated: async () => {
        throw new Error("queue is down");
      },
      cancelRun: async () => {},
      retryModule: async () => {},
    },
  });
  const token = await mintToken(t.db, "OPERATOR");
  useToken(server.url, token);
  useToken(failing.url, token);
});
afterAll(async () => {
  await server?.close();
  await failing?.close();
  await db?.$disconnect();
});

/** SQL statements that read from `table`. */
const reads = (table: string) => queries.filter((q) => new RegExp(`FROM "public"\\."${table}"`, "i").test(q));

describe("DataLoader per request", () => {
  it("lists 20 runs with architecture, dataset, modules and progress in one query per relation", async () => {
    const dataset = await t.db.dataset.create({
      data: { name: unique("d"), format: "synthetic", numClasses: 10, trainSize: 10, testSize: 10 },
    });
    for (let i = 0; i < 20; i++) {
      const arch = await t.db.architecture.create({
        data: { name: unique(`a${i}`), ...TWO_BLOCKS },
      });
      const run = await t.db.run.create({
        data: {
          kind: "INCUBATION",
          architectureId: arch.id,
          datasetId: dataset.id,
          modules: {
            create: [
              { index: 0, blockStart: 0, blockEnd: 1 },
              { index: 1, blockStart: 1, blockEnd: 2 },
            ],
          },
        },
      });
      await appendRunEvents(t.db, run.id, [progressEvent(1, i)]);
    }
    queries.length = 0;
    const res = await postGraphQL<{
      runs: {
        nodes: {
          architecture: { name: string; parameterCount: number };
          dataset: { name: string };
          modules: {
            index: number;
            attempts: number;
            progress: { step: number } | null;
            run: { id: string };
          }[];
        }[];
      };
    }>(
      server.url,
      `{ runs(first: 20) { nodes {
        architecture { name parameterCount } dataset { name }
        modules { index attempts progress { step } run { id } }
      } } }`,
    );
    expect(res.errors).toBeUndefined();
    const runs = res.data!.runs.nodes;
    expect(runs).toHaveLength(20);
    expect(new Set(runs.map((r) => r.architecture.name)).size).toBe(20);
    expect(runs.map((r) => r.modules[1]!.progress?.step)).toEqual([...Array(20).keys()].reverse());
    expect(runs.every((r) => r.modules[0]!.progress === null)).toBe(true);

    expect(reads("architecture")).toHaveLength(1);
    expect(reads("dataset")).toHaveLength(1);
    expect(reads("module")).toHaveLength(1);
    expect(reads("job")).toHaveLength(1);
    expect(queries.filter((q) => /run_event/.test(q))).toHaveLength(1);
    expect(reads("run")).toHaveLength(1); // the page itself; module.run comes from the loader's batch
    // The rest is the token check (auth/principal.ts): the token with its projects, and lastUsedAt.
    const auth = queries.filter((q) => /"api_token"|"_ApiTokenToProject"/.test(q));
    expect(auth.length).toBeLessThanOrEqual(3);
    expect(queries.length - auth.length).toBeLessThanOrEqual(8);
  });
});

describe("dispatcher failures", () => {
  it("are system errors with a code, not user errors", async () => {
    const arch = await t.db.architecture.create({
      data: { name: unique("a"), ...TWO_BLOCKS },
    });
    const dataset = await t.db.dataset.create({
      data: { name: unique("d"), format: "synthetic", numClasses: 10, trainSize: 10, testSize: 10 },
    });
    const res = await postGraphQL(failing.url, START_RUN, {
      input: {
        kind: "INCUBATION",
        architectureId: toGlobalId("Architecture", arch.id),
        datasetId: toGlobalId("Dataset", dataset.id),
      },
    });
    expect(res.errors?.[0]).toMatchObject({
      message: expect.stringMatching(/could not be queued/),
      extensions: { code: "DISPATCH_FAILED" },
    });
    expect(JSON.stringify(res.errors)).not.toMatch(/queue is down/);
  });
});
