/**
 * Zero-setup stays zero-setup, only on loopback: the real `incubator serve` without a token on
 * 127.0.0.1 (local mode, said in one line), refused on other addresses until an admin token
 * exists (one line saying how), and the first admin token made by `incubator token create`.
 * Local mode is the only tokenless path; it still refuses other web pages (Origin, Host).
 */
import { request } from "node:http";
import { describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { createScratchDatabase } from "../../src/platform/db/scratch.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { spawnIncubator } from "../helpers/process.ts";

const READY = /"url":"(http:\/\/[^"]+)"/;

/** POST a query with raw headers (fetch will not send Host or Origin as given); the status. */
function rawPost(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", headers: { "content-type": "application/json", ...headers } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ query: "{ health { ok } }" }));
  });
}

/** Whether a WebSocket upgrade with these headers is accepted (true) or its HTTP status. */
function upgrade(url: string, headers: Record<string, string>): Promise<true | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, "graphql-transport-ws", { headers });
    ws.on("open", () => {
      ws.close();
      resolve(true);
    });
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
    ws.on("error", () => resolve(0));
  });
}

describe("incubator serve: authentication modes", () => {
  it("on loopback needs no token (local mode, said at start) and refuses other origins and hosts", async () => {
    const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_local");
    try {
      const proc = spawnIncubator(["serve", "--workers", "0"], {
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: scratch.url,
        AUTH_MODE: undefined,
      });
      const url = (await proc.waitFor(READY))[1]!;
      expect(proc.output()).toMatch(
        /local mode: no token needed, listening on loopback \(127\.0\.0\.1\) only/,
      );
      const res = await postGraphQL<{ runs: { totalCount: number } }>(
        url,
        "{ runs { totalCount } }",
        {},
        { token: null },
      );
      expect(res.errors).toBeUndefined();
      expect(res.data?.runs.totalCount).toBe(0);
      // Prometheus on the same machine scrapes without a token too.
      const metrics = await fetch(new URL("/metrics", url));
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/^incubator_runs\{state="QUEUED",kind="INCUBATION"\} 0$/m);
      // Another web page the operator opens may not drive the local API.
      expect(await rawPost(url, { origin: "https://evil.example" })).toBe(403);
      expect(await rawPost(url, { origin: `http://${new URL(url).host}` })).toBe(200);
      const wsUrl = url.replace(/^http/, "ws");
      const host = new URL(url).host;
      expect(await upgrade(wsUrl, { origin: "https://evil.example" })).toBe(403);
      expect(await upgrade(wsUrl, { origin: `http://${host}` })).toBe(true);
      expect(await upgrade(wsUrl, {})).toBe(true);
      // DNS rebinding: a loopback server answers only to loopback names.
      expect(await rawPost(url, { host: "evil.example" })).toBe(403);
      proc.child.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      await scratch.drop();
    }
  });

  it("refuses to listen beyond loopback without an admin token, then serves with tokens only", {
    timeout: 300_000,
  }, async () => {
    const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_auth");
    try {
      const env = { PORT: "0", HOST: "0.0.0.0", DATABASE_URL: scratch.url };
      const refused = spawnIncubator(["serve", "--workers", "0"], env);
      expect(await refused.exited).toBe(1);
      const lines = refused.output().trim().split("\n");
      expect(lines.at(-1)).toMatch(
        /^incubator: refusing to listen on 0\.0\.0\.0 without authentication: no admin token exists; create one with `npx incubator token create --role admin`/,
      );

      // The first admin token, like createsuperuser: printed once on stdout.
      const create = spawnIncubator(
        ["token", "create", "--role", "admin", "--name", "first-admin", "--expires-in", "1d"],
        {
          DATABASE_URL: scratch.url,
        },
      );
      expect(await create.exited).toBe(0);
      const secret = create.output().match(/inc_at_[A-Za-z0-9_-]{43}/)?.[0];
      expect(secret).toBeDefined();

      const proc = spawnIncubator(["serve", "--workers", "0"], env);
      const url = (await proc.waitFor(READY, 120_000))[1]!;
      const anonymous = await postGraphQL(url, "{ runs { totalCount } }", {}, { token: null });
      expect(anonymous.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      const me = await postGraphQL<{ currentApiToken: { name: string; role: string; allProjects: boolean } }>(
        url,
        "{ currentApiToken { name role allProjects } }",
        {},
        { token: secret! },
      );
      expect(me.data?.currentApiToken).toEqual({ name: "first-admin", role: "ADMIN", allProjects: true });

      const list = spawnIncubator(["token", "list"], { DATABASE_URL: scratch.url });
      expect(await list.exited).toBe(0);
      expect(list.output()).toMatch(/first-admin\tadmin\t\*\tactive\tlast used 20/);
      const revoke = spawnIncubator(["token", "revoke", "--name", "first-admin"], {
        DATABASE_URL: scratch.url,
      });
      expect(await revoke.exited).toBe(0);
      const revoked = await postGraphQL(url, "{ runs { totalCount } }", {}, { token: secret! });
      expect(revoked.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      proc.child.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      await scratch.drop();
    }
  });

  it("AUTH_MODE=local is refused on a non-loopback address, with one line saying why", async () => {
    const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_local2");
    try {
      const proc = spawnIncubator(["serve", "--workers", "0"], {
        PORT: "0",
        HOST: "0.0.0.0",
        AUTH_MODE: "local",
        DATABASE_URL: scratch.url,
      });
      expect(await proc.exited).toBe(1);
      expect(proc.output().trim().split("\n").at(-1)).toMatch(
        /^incubator: AUTH_MODE=local serves without tokens, so only on loopback, not HOST=0\.0\.0\.0/,
      );
    } finally {
      await scratch.drop();
    }
  });
});
