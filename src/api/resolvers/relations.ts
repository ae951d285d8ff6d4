/** Helpers the per-type resolver files share for rows related to their parent. */
import { GraphQLError } from "graphql";
import type { Artifact, ArtifactKind } from "../../generated/prisma/client.ts";

/** A relation the schema declares non-null; a missing row means the database is inconsistent. */
export function required<T>(value: T | null, what: string): T {
  if (value === null)
    throw new GraphQLError(`${what} not found`, { extensions: { code: "INTERNAL_SERVER_ERROR" } });
  return value;
}

/** The newest artifact of a kind among artifacts listed oldest first. */
export const lastOfKind = (artifacts: readonly Artifact[], kind: ArtifactKind) =>
  artifacts.findLast((a) => a.kind === kind) ?? null;
