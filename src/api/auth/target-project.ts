/**
 * Which project a create goes to: the `projectId` the client named (a Project global ID), or,
 * when it named none, the caller's default (principal.ts `defaultProject`). A token limited to
 * several projects must name one; a project the caller does not reach is refused with the same
 * answer as one that does not exist, so a name or ID of another team's project reveals nothing.
 *
 * GraphQL mutations turn a problem into a userError on `input.projectId`; `PUT /artifacts`
 * into a JSON error naming the `project` query parameter.
 */
import type { Db } from "../../platform/db/client.ts";
import type { ApiContext } from "../context.ts";
import { decodeGlobalId, idFromGlobalIdOrUuid } from "../global-id.ts";
import { type UserError, type UserErrorCode, userError } from "../user-errors.ts";
import { defaultProject, type Principal, projectScope } from "./principal.ts";

/**
 * REQUIRED: the caller reaches several projects and named none; NOT_FOUND: no such project among
 * those the caller reaches (the same whether it exists elsewhere or not at all).
 */
export type TargetProblem = Extract<UserErrorCode, "REQUIRED" | "NOT_FOUND">;

export type TargetProject = { projectId: string } | { problem: TargetProblem; message: string };

/**
 * `given`: what the client sent (a Project global ID; a bare uuid only when `bareUuid`, for
 * HTTP query parameters). `field`: how the client names it, for the messages.
 */
export async function resolveTargetProject(
  db: Db,
  principal: Principal,
  given: string | null | undefined,
  field: string,
  o: { bareUuid?: boolean } = {},
): Promise<TargetProject> {
  if (given == null || given === "") {
    const fallback = defaultProject(principal);
    if (fallback) return { projectId: fallback };
    const names = principal.kind === "api" ? principal.token.projects.map((p) => p.name).sort() : [];
    return {
      problem: "REQUIRED",
      message: `this token reaches several projects (${names.join(", ")}): name one with ${field} (a Project ID from the \`projects\` query)`,
    };
  }
  const id = o.bareUuid ? idFromGlobalIdOrUuid("Project", given) : decodeGlobalId("Project", given);
  const scope = projectScope(principal);
  const reachable = id !== null && (scope === null || scope.includes(id));
  const exists = reachable && (await db.project.findUnique({ where: { id: id! }, select: { id: true } }));
  if (!exists)
    return {
      problem: "NOT_FOUND",
      message: `${field}: no project with ID "${given}" that this token reaches (see the \`projects\` query)`,
    };
  return { projectId: id! };
}

/** For mutations: the project id, or the userError on `input.projectId`. */
export async function targetProjectOf(
  ctx: { db: Db; principal: Principal },
  input: { projectId?: string | null },
): Promise<string | UserError> {
  const target = await resolveTargetProject(ctx.db, ctx.principal, input.projectId, "projectId");
  return "projectId" in target
    ? target.projectId
    : userError(["input", "projectId"], target.message, target.problem);
}

/**
 * An input row (architecture, dataset, meta model) must be in the project the new row goes to:
 * a run or meta model never reads another project's rows. The caller can see `row` (it was
 * loaded through its scoped client), so naming it reveals nothing.
 */
export function sameProject(
  field: string,
  what: string,
  row: { projectId: string; name: string },
  projectId: string,
): UserError[] {
  if (row.projectId === projectId) return [];
  return [
    userError(
      ["input", field],
      `${what} "${row.name}" belongs to another project than this one; use a ${what} of the same project, or set projectId to ${what} "${row.name}"'s project`,
      "WRONG_PROJECT",
    ),
  ];
}

/** The `project` field of the project-scoped types: the row's own project (one query per page). */
export async function projectOfRow(row: { projectId: string }, _: unknown, ctx: ApiContext) {
  const project = await ctx.loaders.project.load(row.projectId);
  if (!project) throw new Error(`no project ${row.projectId}`); // a foreign key: cannot happen
  return project;
}
