/**
 * Project scoping, applied once to the request's database client rather than in each resolver:
 * a Prisma client extension adds "in the caller's projects" to every read, update and delete of
 * the project-scoped models, and puts rows the caller creates in its project. Resolvers and
 * DataLoaders built on `ctx.db` therefore cannot see or touch another project's rows — a row
 * of another project looks exactly like a row that does not exist.
 */
import { DEFAULT_PROJECT_ID } from "../../platform/auth/projects.ts";
import type { Db } from "../../platform/db/client.ts";

type Where = Record<string, unknown>;

/** The filter that keeps a model's rows to `projects` (absent: the model is not scoped). */
function scopeFilter(model: string, projects: string[]): Where | undefined {
  const inProjects = { projectId: { in: projects } };
  switch (model) {
    case "Architecture":
    case "Dataset":
    case "MetaModel":
    case "Run":
      return inProjects;
    case "Module":
    case "Job":
    case "RunEvent":
      return { run: inProjects };
    case "Artifact":
      return { OR: [{ run: inProjects }, { metaModels: { some: inProjects } }] };
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
const CREATES = new Set(["create", "createMany", "createManyAndReturn"]);
const OWNS_PROJECT = new Set(["Architecture", "Dataset", "MetaModel", "Run"]);

/**
 * `db` limited to `projects` (null: every project, `db` itself). Rows created through it go to
 * `writeProjectId` unless the data names a project.
 */
export function scopedDb(db: Db, projects: string[] | null, writeProjectId: string): Db {
  if (projects === null && writeProjectId === DEFAULT_PROJECT_ID) return db;
  return db.$extends({
    query: {
      $allModels: {
        async $allOperations({ model, operation, args, query }) {
          const a = (args ?? {}) as { where?: Where; data?: unknown; create?: Record<string, unknown> };
          if (CREATES.has(operation) && OWNS_PROJECT.has(model)) {
            const withProject = (row: Record<string, unknown>) =>
              row.projectId ? row : { ...row, projectId: writeProjectId };
            a.data = Array.isArray(a.data)
              ? a.data.map(withProject)
              : withProject((a.data ?? {}) as Record<string, unknown>);
          }
          const filter = projects === null ? undefined : scopeFilter(model, projects);
          if (filter && FILTERED.has(operation)) {
            a.where = a.where ? { ...a.where, AND: [...asArray(a.where.AND), filter] } : filter;
            if (operation === "upsert" && a.create && OWNS_PROJECT.has(model) && !a.create.projectId)
              a.create = { ...a.create, projectId: writeProjectId };
          }
          return query(a);
        },
      },
    },
  }) as unknown as Db;
}

const asArray = (value: unknown): unknown[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];
