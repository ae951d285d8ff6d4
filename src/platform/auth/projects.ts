/**
 * Projects scope runs, datasets, architectures, meta models and (through their runs and meta
 * models) artifacts. The migration that introduced them created "default" and put every
 * existing row in it; rows created without a project land there too (the column's default).
 */
import type { Project } from "../../generated/prisma/client.ts";
import type { Db } from "../db/client.ts";

export const DEFAULT_PROJECT_ID = "00000000-0000-0000-0000-000000000001";
export const DEFAULT_PROJECT_NAME = "default";

/** What is wrong with a project name, or null. */
export function projectNameProblem(name: string): string | null {
  return /^[a-z0-9][a-z0-9_.-]{0,62}$/.test(name)
    ? null
    : `project name "${name}" must be 1–63 lowercase letters, digits, "_", "." or "-", starting with a letter or digit`;
}

/** Projects by name; throws naming the first one that does not exist. */
export async function projectsByName(db: Db, names: readonly string[]): Promise<Project[]> {
  const rows = await db.project.findMany({ where: { name: { in: [...names] } } });
  const missing = names.find((n) => !rows.some((r) => r.name === n));
  if (missing)
    throw new Error(`no project named "${missing}"; create it with \`incubator project create ${missing}\``);
  return rows;
}
