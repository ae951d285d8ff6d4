/**
 * Per-caller limits against a real server with real tokens: the request rate (one bucket per
 * token for HTTP requests and WebSocket operations, 429 / RATE_LIMITED) and the WebSocket
 * connections a token holds open (close 4429). Small limits here, not the defaults.
 */
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { collectSubscription, wsClient } from "../helpers/graphql.ts";
import { useApiServer } from "./support.ts";

const t = useTestDatabase();
const BURST = 5;
const MAX_CONNECTIONS = 2;
const api = useApiServer(t, {
  limits: { rateLimitPerSecond: 1, rateLimitBurst: BURST, maxWsConnectionsPerToken: MAX_CONNECTIONS },
});

const health = (token: string) =>
  fetch(api.server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: "{ health { ok } }" }),
  });

/** A raw graphql-ws connection: acknowledged, or closed with a code and reason. */
function connect(
  token: string,
): Promise<{ socket: WebSocket; acked: boolean; code?: number; reason?: string }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(api.server.wsUrl, "graphql-transport-ws");
    socket.on("error", reject);
    socket.on("open", () =>
      socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } })),
    );
    socket.on("message", (data) => {
      if ((JSON.parse(String(data)) as { type: string }).type === "connection_ack")
        resolve({ socket, acked: true });
    });
    socket.on("close", (code, reason) => resolve({ socket, acked: false, code, reason: String(reason) }));
  });
}

describe("per-token rate limit", () => {
  it("answers a burst over the bucket with 429, Retry-After and RATE_LIMITED, and serves another token", async () => {
    const [busy, other] = await Promise.all([mintToken(t.db, "VIEWER"), mintToken(t.db, "VIEWER")]);
    const responses = await Promise.all(Array.from({ length: BURST + 3 }, () => health(busy)));
    const statuses = responses.map((r) => r.status);
    // At least the burst is served (a slow machine may refill one more), the rest refused.
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(BURST);
    expect(statuses.filter((s) => s !== 200).every((s) => s === 429)).toBe(true);
    const refused = responses.find((r) => r.status === 429)!;
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const body = (await refused.json()) as { error: string; code: string; requestId: string };
    expect(body).toMatchObject({ code: "RATE_LIMITED", requestId: refused.headers.get("x-request-id") });
    expect(body.error).toMatch(/limit is 1 per second/);

    const served = await health(other);
    expect(served.status).toBe(200);
  });

  it("refuses WebSocket operations over the same bucket with extensions.code RATE_LIMITED", async () => {
    const token = await mintToken(t.db, "VIEWER");
    const client = wsClient(api.server.wsUrl, { token });
    try {
      const outcomes = [];
      for (let i = 0; i < BURST + 3; i++)
        outcomes.push(await collectSubscription(client, "{ health { ok } }"));
      expect(outcomes.slice(0, BURST).every((o) => o.error === undefined)).toBe(true);
      const refused = outcomes.filter((o) => o.error !== undefined);
      expect(refused.length).toBeGreaterThan(0);
      expect(JSON.stringify(refused[0]!.error)).toContain('"code":"RATE_LIMITED"');
    } finally {
      await client.dispose();
    }
  });
});

describe("WebSocket connections per token", () => {
  it("closes the connection over the limit with 4429 and lets another token connect", async () => {
    const [busy, other] = await Promise.all([mintToken(t.db, "VIEWER"), mintToken(t.db, "VIEWER")]);
    const open = [];
    try {
      for (let i = 0; i < MAX_CONNECTIONS; i++) open.push(await connect(busy));
      expect(open.every((c) => c.acked)).toBe(true);
      const refused = await connect(busy);
      expect(refused).toMatchObject({ acked: false, code: 4429 });
      expect(refused.reason).toMatch(new RegExp(`RATE_LIMITED: .*limit is ${MAX_CONNECTIONS}`));

      const another = await connect(other);
      open.push(another);
      expect(another.acked).toBe(true);

      // A closed connection frees its place.
      const first = open.shift()!;
      await new Promise((resolve) => {
        first.socket.once("close", resolve);
        first.socket.close();
      });
      await new Promise((resolve) => setTimeout(resolve, 100)); // the server sees the close too
      const again = await connect(busy);
      open.push(again);
      expect(again.acked).toBe(true);
    } finally {
      for (const c of open) c.socket.close();
    }
  });
});
