/**
 * A real S3-compatible server for tests: s3rver (npm) on 127.0.0.1, a fresh port and folder per
 * call. Clients authenticate with s3rver's built-in key pair through the AWS SDK's standard
 * credential chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, set here for this test file and
 * the processes it spawns).
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArtifactStoreSettings } from "../../src/platform/artifacts/settings.ts";

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverClass = new (options: {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  configureBuckets: { name: string }[];
}) => S3rverInstance;

const S3rver = createRequire(import.meta.url)("s3rver") as S3rverClass;

/** s3rver's only account. */
export const S3RVER_CREDENTIALS = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** Where s3rver keeps the objects (`<bucket>/<key>._S3rver_object`). */
  directory: string;
  /** ARTIFACT_STORE=s3 settings for this server, with `dataDir` for the download cache. */
  settings(dataDir: string, extra?: { prefix?: string; partSizeBytes?: number }): ArtifactStoreSettings;
  /** Every request the server received, as "METHOD /path?query", in order. */
  requests: string[];
  /** The same as environment variables, for spawned processes. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

export async function startTestS3(bucket = "artifacts"): Promise<TestS3> {
  Object.assign(process.env, S3RVER_CREDENTIALS);
  const directory = mkdtempSync(join(tmpdir(), "incubator-s3rver-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    directory,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const requests: string[] = [];
  server.httpServer?.prependListener("request", (req) => requests.push(`${req.method} ${req.url}`));
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    directory,
    requests,
    settings: (dataDir, extra = {}) => ({
      kind: "s3",
      dataDir,
      bucket,
      prefix: extra.prefix ?? "",
      region: "us-east-1",
      endpoint,
      forcePathStyle: true,
      ...(extra.partSizeBytes ? { partSizeBytes: extra.partSizeBytes } : {}),
    }),
    env: () => ({
      ...S3RVER_CREDENTIALS,
      ARTIFACT_STORE: "s3",
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_REGION: "us-east-1",
      S3_FORCE_PATH_STYLE: "true",
    }),
    close: async () => {
      server.httpServer?.closeAllConnections();
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
