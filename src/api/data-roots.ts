/**
 * Server-side files named by clients (registerDataset's spec paths, registerMetaModel's
 * weightsPath, importMetaModel's path) must lie inside the configured data roots (DATA_ROOTS):
 * the path is resolved with realpath — symlinks followed — and checked before any byte of it is
 * read. Anything else gets one message that says nothing about the file: the same whether it
 * exists, is outside the roots, or cannot be resolved.
 *
 * What went wrong while reading a file inside a root stays in the server's log too (fileProblem):
 * readers' messages can carry bytes of the file (a header length) or a folder's listing.
 */
import { realpath } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { INPUT_LIMITS } from "../platform/limits.ts";
import type { Logger } from "../platform/logger.ts";
import { type UserError, type UserErrorCode, userError } from "./user-errors.ts";

/** The one refusal for a path outside the roots (or not there at all). */
export function outsideRootsMessage(name: string): string {
  return (
    `${name}: not a readable path inside the server's data roots (DATA_ROOTS); give an absolute ` +
    `path to a file or folder there`
  );
}

async function realRoots(roots: readonly string[]): Promise<string[]> {
  const real: string[] = [];
  for (const root of roots) {
    try {
      real.push(await realpath(resolve(root)));
    } catch {
      // A root that does not exist (yet) holds nothing.
    }
  }
  return real;
}

/** The real path of `path` when it lies inside one of `roots`; null otherwise (or when it does not exist). */
export async function insideDataRoots(path: unknown, roots: readonly string[]): Promise<string | null> {
  if (typeof path !== "string" || path.length === 0 || path.length > INPUT_LIMITS.pathLength) return null;
  if (path.includes("\0")) return null;
  let real: string;
  try {
    // A relative path is the server's (its working directory), as the data layer reads it; the
    // root check below is on the real path either way.
    real = await realpath(resolve(path));
  } catch {
    return null;
  }
  for (const root of await realRoots(roots)) {
    if (real === root || real.startsWith(root.endsWith(sep) ? root : root + sep)) return real;
  }
  return null;
}

/**
 * Checks each named path; a user error at `field` for each one that is not inside the roots.
 * `name` is how the message names the field (e.g. "spec.path").
 */
export async function checkDataPaths(
  paths: { field: string[]; name: string; path: unknown }[],
  roots: readonly string[],
): Promise<UserError[]> {
  const errors: UserError[] = [];
  for (const p of paths) {
    if ((await insideDataRoots(p.path, roots)) === null) {
      errors.push(userError(p.field, outsideRootsMessage(p.name), "NOT_FOUND"));
    }
  }
  return errors;
}

/**
 * A file inside a root could not be read as what the client said it is: the client learns which
 * field and what was expected, the log gets the reader's own message under the request id.
 */
export function fileProblem(
  logger: Logger,
  requestId: string,
  field: string[],
  expected: string,
  error: unknown,
  code: UserErrorCode = "UNREADABLE",
): UserError {
  logger.warn({ err: error, requestId, field: field.join(".") }, "a client-named file could not be read");
  return userError(
    field,
    `${field.slice(1).join(".")}: cannot be read as ${expected}; the server's log has the details (request ${requestId})`,
    code,
  );
}
