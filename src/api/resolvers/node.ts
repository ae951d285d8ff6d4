/** `node(id:)` and `nodes(ids:)`: any object by its global ID, through the request's loaders. */
import type { NodeResolvers, QueryResolvers, ResolversTypes } from "../../generated/graphql.ts";
import type { ApiContext } from "../context.ts";
import { NODE_TYPES, type NodeType, parseGlobalId } from "../global-id.ts";
import { badArgument } from "../pagination.ts";

const MAX_NODES = 100;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const loaderKey = {
  Architecture: "architecture",
  Dataset: "dataset",
  MetaModel: "metaModel",
  Run: "run",
  Module: "module",
  Job: "job",
  Artifact: "artifact",
  WorkerToken: "workerToken",
} as const satisfies Record<NodeType, keyof ApiContext["loaders"]>;

type NodeRow = ResolversTypes["Node"] & { __typename: NodeType };

async function fetchNode(globalId: string, argument: string, ctx: ApiContext): Promise<NodeRow | null> {
  const parsed = parseGlobalId(globalId);
  if (!parsed || !(NODE_TYPES as readonly string[]).includes(parsed.type) || !UUID.test(parsed.id)) {
    throw badArgument(argument, `"${globalId}" is not a global ID of this API`);
  }
  const type = parsed.type as NodeType;
  const row = await ctx.loaders[loaderKey[type]].load(parsed.id);
  return row ? ({ ...row, __typename: type } as NodeRow) : null;
}

export const nodeResolvers = {
  Node: {
    __resolveType: (value) => (value as Partial<NodeRow>).__typename ?? null,
  },
  Query: {
    node: (_, args, ctx) => fetchNode(args.id, "id", ctx),
    nodes: (_, args, ctx) => {
      if (args.ids.length > MAX_NODES) {
        throw badArgument("ids", `at most ${MAX_NODES} IDs at a time, got ${args.ids.length}`);
      }
      return Promise.all(args.ids.map((id, i) => fetchNode(id, `ids[${i}]`, ctx)));
    },
  },
} satisfies { Node: NodeResolvers; Query: QueryResolvers };
