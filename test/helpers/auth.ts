/**
 * Real API tokens for tests, made by the same code `incubator token create` runs (no bypass):
 * mint one on the test's database and, if wanted, make it the token the GraphQL helpers send to
 * a server by default (graphql.ts `useToken`).
 */
import type { Role } from "../../src/generated/prisma/client.ts";
import { createApiToken } from "../../src/platform/auth/api-tokens.ts";
import type { Db } from "../../src/platform/db/client.ts";

let minted = 0;

/** A new API token's secret. `projects`: ids it is limited to (default: every project). */
export async function mintToken(
  db: Db,
  role: Role,
  o: { projects?: string[]; expiresAt?: Date; name?: string } = {},
): Promise<string> {
  const name =
    o.name ??
    `test-${role.toLowerCase()}-${process.pid}-${++minted}-${Math.random().toString(36).slice(2, 8)}`;
  const { secret } = await createApiToken(db, {
    name,
    role,
    projectIds: o.projects ?? [],
    ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}),
  });
  return secret;
}
