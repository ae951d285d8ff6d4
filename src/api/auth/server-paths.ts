/**
 * Where files live on the API server is the operators' business, not every reader's: admins (and
 * the local single user) see server paths; other callers see only the file or folder name.
 */
import { basename } from "node:path";
import { roleAtLeast } from "../../platform/auth/api-tokens.ts";
import type { Principal } from "./principal.ts";

export function seesServerPaths(principal: Principal): boolean {
  return (
    principal.kind === "local" || (principal.kind === "api" && roleAtLeast(principal.token.role, "ADMIN"))
  );
}

/** `path` as this caller may see it: whole for admins, its last component for others. */
export function serverPath(path: string | null | undefined, principal: Principal): string | null {
  if (path === null || path === undefined) return null;
  return seesServerPaths(principal) ? path : basename(path);
}

/** A dataset spec with its path fields (path, images, labels) shown as `serverPath` shows them. */
export function withServerPaths<T extends object>(spec: T, principal: Principal): T {
  if (seesServerPaths(principal)) return spec;
  const out = { ...spec } as Record<string, unknown>;
  for (const key of ["path", "images", "labels"])
    if (typeof out[key] === "string") out[key] = basename(out[key] as string);
  return out as T;
}
