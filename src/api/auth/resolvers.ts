/**
 * API tokens and projects over GraphQL: who may call these is in policy.ts (admins; tokens limited
 * to projects manage only tokens limited to their own projects). The secret of a new token is in
 * the payload once.
 */
import type { Project, Role } from "../../generated/prisma/client.ts";
import { artifactUsageBytes, quotaBytesOf } from "../../platform/artifacts/quota.ts";
import {
  type ApiTokenWithProjects,
  apiTokenNameProblem,
  createApiToken,
  revokeApiToken,
} from "../../platform/auth/api-tokens.ts";
import { projectNameProblem } from "../../platform/auth/projects.ts";
import type { ApiContext } from "../context.ts";
import { decodeGlobalId, toGlobalId } from "../global-id.ts";
import { type PageArgs, paginate } from "../pagination.ts";
import { isUniqueViolation, type UserErrorCode, userError } from "../user-errors.ts";
import { projectScope } from "./principal.ts";

const MAX_EXPIRY_SECONDS = 10 * 365 * 86400;

/** Tokens a caller may see and revoke: all, or those limited to (some of) its own projects. */
function manageableTokens(ctx: ApiContext) {
  const scope = projectScope(ctx.principal);
  return scope === null ? {} : { projects: { some: {}, every: { id: { in: scope } } } };
}

interface CreateApiTokenInput {
  name: string;
  role: Role;
  projects?: string[] | null;
  expiresInSeconds?: number | null;
}

async function createToken(ctx: ApiContext, input: CreateApiTokenInput) {
  const fail = (field: string, message: string, code: UserErrorCode = "INVALID") => ({
    apiToken: null,
    secret: null,
    userErrors: [userError(["input", field], message, code)],
  });
  const name = input.name.trim();
  const nameProblem = apiTokenNameProblem(name);
  if (nameProblem) return fail("name", nameProblem);
  const { expiresInSeconds } = input;
  if (expiresInSeconds != null && (expiresInSeconds < 1 || expiresInSeconds > MAX_EXPIRY_SECONDS))
    return fail(
      "expiresInSeconds",
      `expiresInSeconds must be between 1 and ${MAX_EXPIRY_SECONDS} (10 years)`,
    );
  const names = [...new Set(input.projects ?? [])];
  const scope = projectScope(ctx.principal);
  if (names.length === 0 && scope !== null)
    return fail(
      "projects",
      "name the projects: a token limited to projects creates only tokens limited to its projects",
    );
  const projects = await ctx.db.project.findMany({
    where: { name: { in: names }, ...(scope === null ? {} : { id: { in: scope } }) },
  });
  const missing = names.find((n) => !projects.some((p) => p.name === n));
  if (missing) return fail("projects", `no project named "${missing}" that this token reaches`, "NOT_FOUND");
  try {
    const { token, secret } = await createApiToken(ctx.db, {
      name,
      role: input.role,
      projectIds: projects.map((p) => p.id),
      expiresAt: expiresInSeconds == null ? null : new Date(Date.now() + expiresInSeconds * 1000),
    });
    ctx.logger.info({ token: token.name, role: token.role, by: ctx.principal.kind }, "API token created");
    return { apiToken: token, secret, userErrors: [] };
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    return fail("name", `an API token named "${name}" already exists`, "TAKEN");
  }
}

export const authResolvers = {
  Query: {
    projects: (_: unknown, __: unknown, ctx: ApiContext) => {
      const scope = projectScope(ctx.principal);
      return ctx.db.project.findMany({
        where: scope === null ? {} : { id: { in: scope } },
        orderBy: { name: "asc" },
      });
    },
    currentApiToken: (_: unknown, __: unknown, ctx: ApiContext) =>
      ctx.principal.kind === "api" ? ctx.principal.token : null,
    apiTokens: (_: unknown, args: PageArgs, ctx: ApiContext) =>
      paginate(args, {
        order: "asc",
        find: ({ keyset, orderBy, take }) =>
          ctx.db.apiToken.findMany({
            where: { AND: [...keyset, manageableTokens(ctx)] },
            orderBy,
            take,
            include: { projects: true },
          }),
        count: () => ctx.db.apiToken.count({ where: manageableTokens(ctx) }),
      }),
  },
  Mutation: {
    createApiToken: (_: unknown, { input }: { input: CreateApiTokenInput }, ctx: ApiContext) =>
      createToken(ctx, input),
    revokeApiToken: async (_: unknown, { input }: { input: { apiTokenId: string } }, ctx: ApiContext) => {
      const id = decodeGlobalId("ApiToken", input.apiTokenId);
      const visible = id
        ? await ctx.db.apiToken.findFirst({ where: { id, ...manageableTokens(ctx) }, select: { id: true } })
        : null;
      const token = visible ? await revokeApiToken(ctx.db, visible.id) : null;
      if (!token) {
        return {
          apiToken: null,
          userErrors: [
            userError(["input", "apiTokenId"], `no ApiToken with ID ${input.apiTokenId}`, "NOT_FOUND"),
          ],
        };
      }
      ctx.logger.info({ token: token.name, by: ctx.principal.kind }, "API token revoked");
      return { apiToken: token, userErrors: [] };
    },
    createProject: async (_: unknown, { input }: { input: { name: string } }, ctx: ApiContext) => {
      const name = input.name.trim();
      const problem = projectNameProblem(name);
      if (problem) return { project: null, userErrors: [userError(["input", "name"], problem)] };
      try {
        return { project: await ctx.db.project.create({ data: { name } }), userErrors: [] };
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        return {
          project: null,
          userErrors: [userError(["input", "name"], `a project named "${name}" already exists`, "TAKEN")],
        };
      }
    },
  },
  ApiToken: {
    id: (t: ApiTokenWithProjects) => toGlobalId("ApiToken", t.id),
    allProjects: (t: ApiTokenWithProjects) => t.projects.length === 0,
  },
  Project: {
    id: (p: Project) => toGlobalId("Project", p.id),
    artifactQuotaBytes: (p: Project, _: unknown, ctx: ApiContext) => quotaBytesOf(p, ctx.artifactQuotaBytes),
    artifactUsageBytes: (p: Project, _: unknown, ctx: ApiContext) => artifactUsageBytes(ctx.db, p.id),
  },
};
