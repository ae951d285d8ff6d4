/**
 * The runs and metaModels queries (and `runsConnection`, which Architecture.runs and
 * Dataset.runs share). Each type's fields are in its own file: run.ts, module.ts, job.ts, …
 */

import type { QueryResolvers } from "../../generated/graphql.ts";
import type { Prisma, RunState } from "../../generated/prisma/client.ts";
import type { ApiContext } from "../context.ts";
import { fromGlobalId } from "../global-id.ts";
import { type PageArgs, paginate } from "../pagination.ts";

export function runsConnection(
  ctx: ApiContext,
  args: PageArgs & { state?: string | null },
  filter: Prisma.RunWhereInput = {},
) {
  const where: Prisma.RunWhereInput = { ...filter, ...(args.state ? { state: args.state as RunState } : {}) };
  return paginate(args, {
    order: "desc",
    find: async ({ keyset, orderBy, take }) => {
      const rows = await ctx.db.run.findMany({ where: { AND: [where, ...keyset] }, orderBy, take });
      for (const row of rows) ctx.loaders.run.prime(row.id, row); // module.run, job.run, … need no query
      return rows;
    },
    count: () => ctx.db.run.count({ where }),
  });
}

export const runResolvers = {
  Query: {
    runs: (_, args, ctx) => runsConnection(ctx, args),
    run: (_, args, ctx) => ctx.loaders.run.load(fromGlobalId("Run", args.id, "id")),
    metaModels: (_, args, ctx) =>
      paginate(args, {
        order: "asc",
        find: ({ keyset, orderBy, take }) =>
          ctx.db.metaModel.findMany({ where: { AND: keyset }, orderBy, take }),
        count: () => ctx.db.metaModel.count(),
      }),
    metaModel: (_, args, ctx) => ctx.loaders.metaModel.load(fromGlobalId("MetaModel", args.id, "id")),
  },
} satisfies { Query: QueryResolvers };
