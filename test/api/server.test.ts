import { describe, expect, it } from "vitest";
import { readMigrations } from "../../src/platform/db/migrate.ts";
import { packageVersion } from "../../src/platform/version.ts";
import { useViewerApiServer } from "../helpers/api-server.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { collectSubscription, postGraphQL, wsClient } from "../helpers/graphql.ts";

const t = useTestDatabase();
const server = useViewerApiServer(t);

describe("GraphQL over HTTP", () => {
  it("answers the health query with the database's state", async () => {
    const res = await postGraphQL<{ health: Record<string, unknown> }>(
      server.url,
      "{ health { ok database databaseLatencyMs migrations version uptimeSeconds } }",
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.health).toMatchObject({
      ok: true,
      database: true,
      migrations: readMigrations().length,
      version: packageVersion(),
    });
    expect(res.data?.health.databaseLatencyMs).toBeGreaterThan(0);
  });

  it("reports a malformed query with an error code", async () => {
    const res = await postGraphQL(server.url, "{ health { nope } }");
    expect(res.errors?.[0]?.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
  });
});

describe("GraphQL over WebSocket (graphql-ws) on the same port and path", () => {
  it("streams serverTime ticks in order and completes", async () => {
    const client = wsClient(server.wsUrl);
    try {
      const { results, error } = await collectSubscription<{ serverTime: { tick: number; time: string } }>(
        client,
        "subscription { serverTime(intervalMs: 20, count: 3) { tick time } }",
      );
      expect(error).toBeUndefined();
      expect(results.map((r) => r.data?.serverTime.tick)).toEqual([1, 2, 3]);
      const times = results.map((r) => Date.parse(r.data!.serverTime.time));
      expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(30);
    } finally {
      await client.dispose();
    }
  });

  it("rejects bad subscription arguments with a field-naming error", async () => {
    const client = wsClient(server.wsUrl);
    try {
      const { results, error } = await collectSubscription(
        client,
        "subscription { serverTime(intervalMs: 1) { tick } }",
      );
      const errors = (error as { message: string }[] | undefined) ?? results[0]?.errors;
      expect(JSON.stringify(errors)).toMatch(/intervalMs must be at least 10/);
    } finally {
      await client.dispose();
    }
  });
});
