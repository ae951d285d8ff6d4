/**
 * The whole platform in the test process (API, queue, dispatcher, `workers` local workers) on the
 * file's scratch database; `workers: 0` is `serve --workers 0` (worker processes join from outside).
 */
import { tmpdir } from "node:os";
import pino from "pino";
import { type LocalPlatform, startLocalPlatform } from "../../src/cli/local-platform.ts";
import type { ArtifactStoreSettings } from "../../src/platform/artifacts/settings.ts";
import { mintToken } from "./auth.ts";
import type { TestDatabase } from "./database.ts";
import { useToken } from "./graphql.ts";
import { BIN } from "./process.ts";

/** With auth on: `token` is a real admin API token, which the GraphQL helpers send by default. */
export async function startTestPlatform(
  t: TestDatabase,
  dataDir: string,
  o: {
    workers: number;
    threads?: number;
    staleAfterMs?: number;
    dataRoots?: string[];
    /** Listen here instead of 127.0.0.1 (e.g. a veth address that a test's network namespace reaches). */
    host?: string;
    artifactStore?: ArtifactStoreSettings;
  },
): Promise<LocalPlatform & { token: string }> {
  // Minted first: off loopback, the API refuses to start while no admin token exists.
  const token = await mintToken(t.db, "ADMIN");
  const local = await startLocalPlatform({
    databaseUrl: t.url,
    dataDir,
    port: 0,
    host: o.host ?? "127.0.0.1",
    logger: pino({ level: "silent" }),
    bin: BIN,
    // Tests write their datasets under the OS temp folder (or name their own roots).
    api: { dataRoots: o.dataRoots ?? [dataDir, tmpdir()] },
    auth: { auth: "tokens" },
    workers: o.workers,
    ...(o.threads ? { threads: o.threads } : {}),
    ...(o.staleAfterMs ? { staleAfterMs: o.staleAfterMs } : {}),
    ...(o.artifactStore ? { artifactStore: o.artifactStore } : {}),
  });
  useToken(local.api.url, token);
  return Object.assign(local, { token });
}
