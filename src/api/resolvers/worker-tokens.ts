/** Worker tokens: create (secret shown once), revoke, list; and the token a worker call carries. */
import type { MutationResolvers, QueryResolvers, WorkerTokenResolvers } from "../../generated/graphql.ts";
import type { WorkerToken } from "../../generated/prisma/client.ts";
import { createWorkerToken, workerTokenInputProblem } from "../../platform/auth/worker-tokens.ts";
import type { ApiContext } from "../context.ts";
import { decodeGlobalId, toGlobalId } from "../global-id.ts";
import { type PageArgs, paginate } from "../pagination.ts";
import { isUniqueViolation, userError } from "../user-errors.ts";
import { requireWorker } from "../worker-auth.ts";

export const workerTokenResolvers = {
  Query: {
    workerTokens: (_: unknown, args: PageArgs, ctx: ApiContext) =>
      paginate(args, {
        order: "asc",
        find: ({ keyset, orderBy, take }) =>
          ctx.db.workerToken.findMany({ where: { AND: keyset }, orderBy, take }),
        count: () => ctx.db.workerToken.count(),
      }),
    currentWorkerToken: async (_: unknown, __: unknown, ctx: ApiContext) => (await requireWorker(ctx)).token,
  },
  Mutation: {
    createWorkerToken: async (
      _: unknown,
      { input }: { input: { name: string; labels?: string[] | null } },
      ctx: ApiContext,
    ) => {
      const name = input.name.trim();
      const labels = input.labels ?? [];
      const problem = workerTokenInputProblem({ name, labels });
      if (problem)
        return {
          workerToken: null,
          secret: null,
          userErrors: [userError(["input", ...problem.field], problem.message)],
        };
      try {
        const { token, secret } = await createWorkerToken(ctx.db, { name, labels });
        return { workerToken: token, secret, userErrors: [] };
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        return {
          workerToken: null,
          secret: null,
          userErrors: [
            userError(["input", "name"], `a worker token named "${name}" already exists`, "TAKEN"),
          ],
        };
      }
    },
    revokeWorkerToken: async (
      _: unknown,
      { input }: { input: { workerTokenId: string } },
      ctx: ApiContext,
    ) => {
      const id = decodeGlobalId("WorkerToken", input.workerTokenId);
      const token = id ? await ctx.db.workerToken.findUnique({ where: { id } }) : null;
      if (!token) {
        return {
          workerToken: null,
          userErrors: [
            userError(
              ["input", "workerTokenId"],
              `no WorkerToken with ID ${input.workerTokenId}`,
              "NOT_FOUND",
            ),
          ],
        };
      }
      const revoked = token.revokedAt
        ? token
        : await ctx.db.workerToken.update({ where: { id: token.id }, data: { revokedAt: new Date() } });
      return { workerToken: revoked, userErrors: [] };
    },
  },
  WorkerToken: {
    id: (t: WorkerToken) => toGlobalId("WorkerToken", t.id),
  },
} satisfies { Query: QueryResolvers; Mutation: MutationResolvers; WorkerToken: WorkerTokenResolvers };
