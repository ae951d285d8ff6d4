import { describe, expect, it } from "vitest";
import { useTestDatabase } from "../helpers/database.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { CREATE_ARCHITECTURE, type UserErrorShape, unique, useApiServer } from "./support.ts";

const t = useTestDatabase();
const api = useApiServer(t);

interface Payload {
  createArchitecture: {
    architecture: Record<string, unknown> & { id: string; modules: unknown[] };
    userErrors: UserErrorShape[];
  };
}

const tiny = { imageSize: 32, patchSize: 4, width: 64, depth: 6, heads: 4, numClasses: 10 };

async function create(input: Record<string, unknown>) {
  return (await api.gql<Payload>(CREATE_ARCHITECTURE, { input })).createArchitecture;
}

/** The error fields of a createArchitecture that must fail. */
async function errorsOf(input: Record<string, unknown>) {
  const { architecture, userErrors } = await create({ name: unique("bad"), ...input });
  expect(architecture).toBeNull();
  return userErrors;
}

describe("createArchitecture", () => {
  it("stores the architecture with its split, module ranges and parameter count", async () => {
    const name = unique("tiny");
    const { architecture, userErrors } = await create({ name, ...tiny, moduleSplit: [2, 1, 1, 2] });
    expect(userErrors).toEqual([]);
    expect(architecture).toMatchObject({
      name,
      ...tiny,
      channels: 3,
      mlpRatio: 4,
      moduleSplit: [2, 1, 1, 2],
      numModules: 4,
    });
    expect(architecture.modules).toEqual([
      { index: 0, blockStart: 0, blockEnd: 2, blocks: 2 },
      { index: 1, blockStart: 2, blockEnd: 3, blocks: 1 },
      { index: 2, blockStart: 3, blockEnd: 4, blocks: 1 },
      { index: 3, blockStart: 4, blockEnd: 6, blocks: 2 },
    ]);
    // patch embed + cls + pos, 6 blocks of 12d²+13d, final norm + head
    const d = 64;
    const expected = d * 3 * 16 + d + d + 65 * d + 6 * (12 * d * d + 13 * d) + 2 * d + d * 10 + 10;
    expect(architecture.parameterCount).toBe(expected);
    const row = await t.db.architecture.findFirstOrThrow({ where: { name } });
    expect(row.moduleSplit).toEqual([2, 1, 1, 2]);
  });

  it("splits into K near-equal modules, 4 by default, extra blocks to the outer modules", async () => {
    const a = await create({ name: unique("k"), ...tiny, depth: 14 });
    expect(a.architecture.moduleSplit).toEqual([4, 3, 3, 4]);
    const b = await create({ name: unique("k"), ...tiny, modules: 3 });
    expect(b.architecture.moduleSplit).toEqual([2, 2, 2]);
  });

  it("takes a preset, with explicit fields overriding it", async () => {
    const vit = await create({ name: unique("vits"), preset: "vit-small-16" });
    expect(vit.userErrors).toEqual([]);
    expect(vit.architecture).toMatchObject({
      imageSize: 224,
      patchSize: 16,
      width: 384,
      depth: 12,
      heads: 6,
    });
    expect(vit.architecture.parameterCount).toBe(22_050_664); // timm's vit_small_patch16_224
    const deit = await create({ name: unique("deit"), preset: "deit-t-12", numClasses: 100, modules: 6 });
    expect(deit.architecture).toMatchObject({ width: 192, heads: 3, imageSize: 32, numClasses: 100 });
    expect(deit.architecture.moduleSplit).toEqual([2, 2, 2, 2, 2, 2]);
  });

  it("reports each invalid field as a user error with its path", async () => {
    expect(await errorsOf({ ...tiny, heads: 5 })).toEqual([
      { field: ["input", "width"], message: "width (64) must be divisible by heads (5)", code: "INVALID" },
    ]);
    expect(await errorsOf({ ...tiny, patchSize: 5 })).toMatchObject([
      { field: ["input", "imageSize"], message: expect.stringMatching(/divisible by patchSize/) },
    ]);
    expect(await errorsOf({ ...tiny, width: 0 })).toMatchObject([
      { field: ["input", "width"], message: "width must be a positive integer, got 0" },
    ]);
    expect(await errorsOf({ ...tiny, mlpRatio: -1 })).toMatchObject([{ field: ["input", "mlpRatio"] }]);
    expect(await errorsOf({ ...tiny, moduleSplit: [2, 2, 1] })).toMatchObject([
      {
        field: ["input", "moduleSplit"],
        message: expect.stringMatching(/sums to 5 but the model has depth 6/),
      },
    ]);
    expect(await errorsOf({ ...tiny, moduleSplit: [3, 0, 3] })).toMatchObject([
      { field: ["input", "moduleSplit", "1"], message: expect.stringMatching(/≥ 1 block/) },
    ]);
    expect(await errorsOf({ ...tiny, modules: 7 })).toMatchObject([
      { field: ["input", "modules"], message: expect.stringMatching(/cannot exceed depth/) },
    ]);
    expect(await errorsOf({ ...tiny, modules: 2, moduleSplit: [3, 3] })).toMatchObject([
      { field: ["input", "modules"] },
    ]);
    expect(await errorsOf({ preset: "vit-gigantic-3" })).toMatchObject([
      { field: ["input", "preset"], message: expect.stringMatching(/unknown model preset/) },
    ]);
    const missing = await errorsOf({ imageSize: 32, patchSize: 4 });
    expect(missing.map((e) => e.field?.[1])).toEqual(["width", "depth", "heads", "numClasses"]);
    expect(missing.every((e) => e.code === "REQUIRED")).toBe(true);
    expect(await errorsOf({ ...tiny, name: "  " })).toMatchObject([
      { field: ["input", "name"], code: "REQUIRED" },
    ]);
  });

  it("refuses a name that is taken", async () => {
    const name = unique("dup");
    expect((await create({ name, ...tiny })).userErrors).toEqual([]);
    expect((await create({ name, ...tiny })).userErrors).toMatchObject([
      { field: ["input", "name"], code: "TAKEN" },
    ]);
  });

  it("keeps GraphQL's own type checks as request errors", async () => {
    const res = await postGraphQL(api.server.url, CREATE_ARCHITECTURE, {
      input: { name: "x", width: "wide" },
    });
    expect(res.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });
});

describe("architectures", () => {
  it("pages forwards and backwards with cursors, hasNextPage and totalCount", async () => {
    for (let i = 0; i < 5; i++) await create({ name: unique(`page${i}`), ...tiny });
    const total = await t.db.architecture.count();
    const QUERY = `query ($first: Int, $after: String, $last: Int, $before: String) {
      architectures(first: $first, after: $after, last: $last, before: $before) {
        totalCount edges { cursor node { id name } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }`;
    type Page = {
      architectures: {
        totalCount: number;
        edges: { cursor: string; node: { id: string; name: string } }[];
        pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string; endCursor: string };
      };
    };
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const { architectures: page }: Page = await api.gql<Page>(QUERY, { first: 2, after });
      expect(page.totalCount).toBe(total);
      expect(page.pageInfo.hasPreviousPage).toBe(after !== null);
      seen.push(...page.edges.map((e) => e.node.id));
      pages++;
      if (!page.pageInfo.hasNextPage) break;
      expect(page.edges).toHaveLength(2);
      after = page.pageInfo.endCursor;
    }
    expect(pages).toBe(Math.ceil(total / 2));
    expect(new Set(seen).size).toBe(total);
    const all = await t.db.architecture.findMany({ orderBy: [{ createdAt: "asc" }, { id: "asc" }] });
    expect(seen).toEqual(all.map((a) => Buffer.from(`Architecture:${a.id}`).toString("base64url")));

    const { architectures: last } = await api.gql<Page>(QUERY, { last: 2 });
    expect(last.edges.map((e) => e.node.id)).toEqual(seen.slice(-2));
    expect(last.pageInfo.hasPreviousPage).toBe(true);
    const { architectures: before } = await api.gql<Page>(QUERY, {
      last: 2,
      before: last.pageInfo.startCursor,
    });
    expect(before.edges.map((e) => e.node.id)).toEqual(seen.slice(-4, -2));
  });

  it("refuses bad page arguments with a code naming the argument", async () => {
    const big = await postGraphQL(api.server.url, "{ architectures(first: 1000) { totalCount } }");
    expect(big.errors?.[0]).toMatchObject({ extensions: { code: "BAD_USER_INPUT", argument: "first" } });
    const cursor = await postGraphQL(api.server.url, '{ architectures(after: "nope") { totalCount } }');
    expect(cursor.errors?.[0]).toMatchObject({ extensions: { code: "BAD_USER_INPUT", argument: "after" } });
  });

  it("fetches one by ID, and by node(id:)", async () => {
    const { architecture } = await create({ name: unique("node"), ...tiny });
    const res = await api.gql<{ architecture: { name: string }; node: { __typename: string; id: string } }>(
      `query ($id: ID!) { architecture(id: $id) { name } node(id: $id) { __typename id ... on Architecture { depth } } }`,
      { id: architecture.id },
    );
    expect(res.architecture.name).toBe(architecture.name);
    expect(res.node).toMatchObject({ __typename: "Architecture", id: architecture.id, depth: 6 });
  });
});
