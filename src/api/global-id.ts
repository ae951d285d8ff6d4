/**
 * Relay global IDs: base64url("Type:uuid"). Opaque to clients, and `node(id:)` can tell which
 * table to read. Decoding checks the type so a Module's id passed where a Run's is expected is
 * refused with a message naming the argument.
 */
import { GraphQLError } from "graphql";

export function toGlobalId(type: string, id: string): string {
  return Buffer.from(`${type}:${id}`, "utf8").toString("base64url");
}

export function parseGlobalId(globalId: string): { type: string; id: string } | null {
  const decoded = Buffer.from(globalId, "base64url").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return null;
  return { type: decoded.slice(0, colon), id: decoded.slice(colon + 1) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The database id inside a global ID of `type`; a GraphQL error naming `argument` otherwise. */
export function fromGlobalId(type: string, globalId: string, argument: string): string {
  const parsed = parseGlobalId(globalId);
  if (!parsed || parsed.type !== type || !UUID.test(parsed.id)) {
    throw new GraphQLError(`${argument}: "${globalId}" is not the ID of a ${type}`, {
      extensions: { code: "BAD_USER_INPUT", argument },
    });
  }
  return parsed.id;
}

/** The database id inside a global ID of `type`, or null when it is not one (mutation inputs). */
export function decodeGlobalId(type: string, globalId: string): string | null {
  const parsed = parseGlobalId(globalId);
  return parsed && parsed.type === type && UUID.test(parsed.id) ? parsed.id : null;
}

/** The database id from a global ID of `type` or from a bare uuid (HTTP routes accept both); else null. */
export function idFromGlobalIdOrUuid(type: string, value: string): string | null {
  return decodeGlobalId(type, value) ?? (UUID.test(value) ? value : null);
}

/** The object types `node(id:)` can fetch. */
export const NODE_TYPES = [
  "Architecture",
  "Dataset",
  "MetaModel",
  "Run",
  "Module",
  "Job",
  "Artifact",
  "WorkerToken",
] as const;
export type NodeType = (typeof NODE_TYPES)[number];
