/**
 * Project scoping, applied once to the request's database client rather than in each resolver:
 * a Prisma client extension adds "in the caller's projects" to every read, update and delete of
 * the project-scoped models. Resolvers and DataLoaders built on `ctx.db` therefore cannot see or
 * touch another project's rows — a row of another project looks exactly like a row that does not
 * exist.
 *
 * Creates name their project explicitly (the resolver resolved it with target-project.ts); the
 * extension only checks that a limited caller creates inside its projects, so a resolver that
 * forgot the project fails loudly instead of filing the row under "default".
 */
import type { Db } from "../../platform/db/client.ts";

type Where = Record<string, unknown>;

/** The models that carry a `projectId` column of their own. */
const OWNS_PROJECT = new Set(["Architecture", "Dataset", "MetaModel", "Run", "Artifact"]);

/** The filter that keeps a model's rows to `projects` (absent: the model is not scoped). */
function scopeFilter(model: string, projects: string[]): Where | undefined {
  const inProjects = { projectId: { in: projects } };
  if (OWNS_PROJECT.has(model)) return inProjects;
  switch (model) {
    case "Module":
    case "Job":
    case "RunEvent":
      return { run: inProjects };
    default:
      return undefined;
  }
}

const FILTERED = new Set([
  "findUnique",
  "findUniqueOrThrow",
  "findFirst",
  "findFirstOrThrow",
  "findMany",
  "count",
  "aggregate",
  "groupBy",
  "update",
  "updateMany",
  "updateManyAndReturn",
  "delete",
  "deleteMany",
  "upsert",
]);
const CREATES = new Set(["create", "createMany", "createManyAndReturn", "upsert"]);

/** A create outside the caller's projects, or without a project: a resolver's mistake, not the user's. */
function checkCreate(model: string, row: Record<string, unknown>, projects: string[]): void {
  const projectId = row.projectId;
  if (typeof projectId !== "string" || !projects.includes(projectId))
    throw new Error(`internal: ${model} created without a projectId among the caller's projects`);
}

/** `db` limited to `projects` (null: every project, `db` itself). */
export function scopedDb(db: Db, projects: string[] | null): Db {
  if (projects === null) return db;
  return db.$extends({
    query: {
      $allModels: {
        async $allOperations({ model, operation, args, query }) {
          const a = (args ?? {}) as { where?: Where; data?: unknown; create?: Record<string, unknown> };
          if (CREATES.has(operation) && OWNS_PROJECT.has(model)) {
            const rows = operation === "upsert" ? [a.create ?? {}] : asArray(a.data);
            for (const row of rows) checkCreate(model, row as Record<string, unknown>, projects);
          }
          const filter = scopeFilter(model, projects);
          if (filter && FILTERED.has(operation))
            a.where = a.where ? { ...a.where, AND: [...asArray(a.where.AND), filter] } : filter;
          return query(a);
        },
      },
    },
  }) as unknown as Db;
}

const asArray = (value: unknown): unknown[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];
