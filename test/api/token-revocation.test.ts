/**
 * Revocation is pushed, not only polled: revoking an API token (the revokeApiToken mutation, or
 * `incubator token revoke` against the database) NOTIFYs, and the API server closes that token's
 * WebSocket connections with the FORBIDDEN close code 4403. The server here re-checks open
 * subscriptions only every 10 minutes, so the periodic re-check cannot be what closed them.
 * After the close the client receives nothing more, though the run's next event is delivered to
 * another subscriber.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/api/global-id.ts";
import type { ApiServer } from "../../src/api/server.ts";
import { appendRunEvents } from "../../src/platform/events/event-log.ts";
import { startTestApiServer } from "../helpers/api-server.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { progressEvent } from "../helpers/events.ts";
import { postGraphQL, wsClient } from "../helpers/graphql.ts";
import { spawnIncubator } from "../helpers/process.ts";
import { createRunRows } from "../helpers/rows.ts";

const t = useTestDatabase();
let server: ApiServer;
let admin: string;
let runId: string;
let step = 0;

beforeAll(async () => {
  server = await startTestApiServer(t, { authRecheckMs: 10 * 60_000 });
  admin = await mintToken(t.db, "ADMIN");
  const { run } = await createRunRows(t.db);
  runId = run.id;
  await appendRunEvents(t.db, run.id, [progressEvent(null, ++step)]);
});
afterAll(async () => {
  await server?.close();
});

const SUBSCRIBE = `subscription ($id: ID!, $after: Int) { runEvents(runId: $id, afterSeq: $after) { seq } }`;

/** A runEvents subscription as `token`: the seqs it received, and how it ended. */
function watch(token: string, afterSeq = 0) {
  const client = wsClient(server.wsUrl, { token });
  const seqs: number[] = [];
  const ended = new Promise<{ code?: number; reason?: string } | "complete">((resolve) => {
    client.subscribe<{ runEvents: { seq: number } }>(
      { query: SUBSCRIBE, variables: { id: toGlobalId("Run", runId), after: afterSeq } },
      {
        next: (value) => {
          if (value.data) seqs.push(value.data.runEvents.seq);
        },
        error: (error) => resolve(error as { code?: number; reason?: string }),
        complete: () => resolve("complete"),
      },
    );
  });
  return { client, seqs, ended };
}

/** After `revoke`, the watcher is closed with 4403 and gets no event the run appends afterwards. */
async function expectClosedOnRevoke(name: string, revoke: () => Promise<void>) {
  const secret = await mintToken(t.db, "VIEWER", { name });
  const revoked = watch(secret);
  await expect.poll(() => revoked.seqs.length).toBe(step);
  await revoke();
  const closed = await revoked.ended;
  expect(closed).not.toBe("complete");
  expect(closed).toMatchObject({ code: 4403, reason: expect.stringMatching(/^FORBIDDEN: .*revoked/) });
  const seen = revoked.seqs.length;

  // The run goes on: an admin's subscription receives the next event; the closed one does not.
  const other = watch(admin, step);
  await appendRunEvents(t.db, runId, [progressEvent(null, ++step)]);
  await expect.poll(() => other.seqs).toEqual([step]);
  expect(revoked.seqs.length).toBe(seen);
  await other.client.dispose();
  await revoked.client.dispose();
}

describe("revoking an API token closes its WebSocket connections", () => {
  it("through the revokeApiToken mutation", async () => {
    await expectClosedOnRevoke("revoke-by-mutation", async () => {
      const row = await t.db.apiToken.findUniqueOrThrow({ where: { name: "revoke-by-mutation" } });
      const res = await postGraphQL<{ revokeApiToken: { userErrors: unknown[] } }>(
        server.url,
        `mutation ($input: RevokeApiTokenInput!) { revokeApiToken(input: $input) { userErrors { message } } }`,
        { input: { apiTokenId: toGlobalId("ApiToken", row.id) } },
        { token: admin },
      );
      expect(res.errors).toBeUndefined();
      expect(res.data!.revokeApiToken.userErrors).toEqual([]);
    });
  });

  it("through `incubator token revoke` against the database", async () => {
    await expectClosedOnRevoke("revoke-by-cli", async () => {
      const cli = spawnIncubator(["token", "revoke", "--name", "revoke-by-cli"], { DATABASE_URL: t.url });
      expect(await cli.exited).toBe(0);
      expect(cli.output()).toContain('revoked API token "revoke-by-cli"');
    });
  });
});
