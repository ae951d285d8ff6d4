import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { readMigrations } from "../../src/platform/db/migrate.ts";
import { createScratchDatabase } from "../../src/platform/db/scratch.ts";
import { postGraphQL } from "../helpers/graphql.ts";
import { spawnIncubator } from "../helpers/process.ts";

const READY = /"url":"(http:\/\/[^"]+)"/;

function postgresProcessesUnder(dir: string): string[] {
  try {
    return execFileSync("pgrep", ["-af", `postgres -D ${dir}`], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.trim() && !line.includes("pgrep"));
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe("incubator serve", () => {
  it("exits 1 with one line naming PORT when PORT is not a number", async () => {
    const proc = spawnIncubator(["serve"], { PORT: "abc", DATABASE_URL: "" });
    expect(await proc.exited).toBe(1);
    expect(proc.output().trim()).toBe('incubator: invalid configuration: PORT="abc" must be a number');
  });

  it("exits 1 with one line naming DATABASE_URL when the database is unreachable", async () => {
    const proc = spawnIncubator(["serve"], {
      PORT: "0",
      DATABASE_URL: "postgresql://nobody@127.0.0.1:1/nothing",
    });
    expect(await proc.exited).toBe(1);
    const lines = proc.output().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^incubator: DATABASE_URL: cannot connect to postgresql:\/\/nobody@127\.0\.0\.1:1\/nothing/,
    );
    expect(lines[0]).toMatch(/unset DATABASE_URL to use the embedded database/);
  });

  it("serves on DATABASE_URL and stops cleanly on SIGTERM", async () => {
    const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_serve");
    try {
      const proc = spawnIncubator(["serve"], {
        PORT: "0",
        HOST: "127.0.0.1",
        AUTH_MODE: "tokens", // local mode is tested on its own (auth.test.ts)
        DATABASE_URL: scratch.url,
      });
      const url = (await proc.waitFor(READY))[1]!;
      const res = await postGraphQL<{ health: { ok: boolean } }>(url, "{ health { ok } }");
      expect(res.data?.health.ok).toBe(true);
      proc.child.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      await scratch.drop();
    }
  });

  it("stops on SIGTERM with NODE_ENV=production too (Apollo's own signal handlers stay off)", async () => {
    // vitest runs children with NODE_ENV=test, the one setting under which Apollo Server installs
    // no SIGTERM handler of its own; the images run NODE_ENV=production.
    const scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test_serve");
    try {
      const proc = spawnIncubator(["serve", "--workers", "0"], {
        PORT: "0",
        HOST: "127.0.0.1",
        AUTH_MODE: "tokens",
        NODE_ENV: "production",
        DATABASE_URL: scratch.url,
      });
      await proc.waitFor(READY);
      proc.child.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      await scratch.drop();
    }
  }, 120_000);

  it("with no DATABASE_URL starts an embedded PostgreSQL under DATA_DIR and leaves no process behind on Ctrl-C", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "incubator-serve-"));
    const proc = spawnIncubator(["serve"], {
      PORT: "0",
      HOST: "127.0.0.1",
      AUTH_MODE: "tokens",
      DATABASE_URL: "",
      DATA_DIR: dataDir,
    });
    const url = (await proc.waitFor(READY, 90_000))[1]!;
    expect(proc.output()).toMatch(/started embedded PostgreSQL/);
    const res = await postGraphQL<{ health: { ok: boolean; migrations: number } }>(
      url,
      "{ health { ok migrations } }",
    );
    expect(res.data?.health).toEqual({ ok: true, migrations: readMigrations().length });
    expect(postgresProcessesUnder(join(dataDir, "postgres"))).not.toEqual([]);
    proc.child.kill("SIGINT");
    expect(await proc.exited).toBe(0);
    expect(postgresProcessesUnder(join(dataDir, "postgres"))).toEqual([]);
  });
});
