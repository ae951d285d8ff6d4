/**
 * `userErrors` in mutation payloads: mistakes in the input that the user can fix, each with the
 * path of the offending input field, a message, and a stable code. Anything else is a system
 * error and is thrown (with `extensions.code`).
 */
/** The `UserErrorCode` enum of schema.graphql (its descriptions say what each means). */
export type UserErrorCode =
  | "REQUIRED"
  | "INVALID"
  | "TAKEN"
  | "NOT_FOUND"
  | "INCOMPATIBLE"
  | "MISMATCH"
  | "UNREADABLE"
  | "RUN_FINISHED"
  | "NOT_RETRYABLE"
  | "NOT_HELD"
  | "WRONG_PROJECT"
  | "QUOTA_EXCEEDED"
  | "NOT_GRANTED";

export interface UserError {
  /** Path to the input field, e.g. ["input", "moduleSplit", "2"]; null for the input as a whole. */
  field: string[] | null;
  message: string;
  code: UserErrorCode;
}

export function userError(
  field: string[] | null,
  message: string,
  code: UserErrorCode = "INVALID",
): UserError {
  return { field, message, code };
}

/**
 * The project's validators throw messages that start with the field they are about
 * ("width (192) must be divisible by heads (5)", "moduleSplit[2] must be ≥ 1 block, …"). This
 * reads that leading name (and index) back into a field path when it is one of `fields`.
 */
export function fieldOfMessage(
  message: string,
  fields: readonly string[],
  prefix: string[],
): string[] | null {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?/.exec(message);
  if (!match || !fields.includes(match[1]!)) return null;
  return match[2] === undefined ? [...prefix, match[1]!] : [...prefix, match[1]!, match[2]];
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Prisma's unique-constraint violation (a concurrent insert of the same name). */
export { isUniqueViolation } from "../platform/db/unique-violation.ts";
