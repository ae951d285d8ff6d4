import type { QueryResolvers } from "../../generated/graphql.ts";
import type { ApiContext } from "../context.ts";

export const healthResolvers = {
  Query: {
    health: async (_: unknown, __: unknown, ctx: ApiContext) => {
      const started = performance.now();
      let database = false;
      let migrations = 0;
      let databaseLatencyMs: number | null = null;
      try {
        await ctx.db.$queryRaw`select 1`;
        databaseLatencyMs = performance.now() - started;
        database = true;
        const rows = await ctx.db.$queryRaw<{ n: bigint }[]>`
          select count(*) as n from "_prisma_migrations" where finished_at is not null and rolled_back_at is null`;
        migrations = Number(rows[0]?.n ?? 0);
      } catch (error) {
        ctx.logger.warn({ err: error }, "health: database check failed");
      }
      return {
        ok: database,
        database,
        databaseLatencyMs,
        migrations,
        version: ctx.version,
        uptimeSeconds: (Date.now() - ctx.startedAt.getTime()) / 1000,
      };
    },
  },
} satisfies { Query: QueryResolvers };
