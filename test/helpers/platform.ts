/**
 * The whole platform in the test process (API, queue, dispatcher, `workers` local workers) on the
 * file's scratch database; `workers: 0` is `serve --workers 0` (worker processes join from outside).
 */
import { tmpdir } from "node:os";
import pino from "pino";
import { type LocalPlatform, startLocalPlatform } from "../../src/cli/local-platform.ts";
import type { TestDatabase } from "./database.ts";
import { BIN } from "./process.ts";

export function startTestPlatform(
  t: TestDatabase,
  dataDir: string,
  o: { workers: number; threads?: number; staleAfterMs?: number },
): Promise<LocalPlatform> {
  return startLocalPlatform({
    databaseUrl: t.url,
    dataDir,
    port: 0,
    host: "127.0.0.1",
    logger: pino({ level: "silent" }),
    bin: BIN,
    // Tests write their datasets under the OS temp folder.
    api: { dataRoots: [dataDir, tmpdir()] },
    ...o,
  });
}
