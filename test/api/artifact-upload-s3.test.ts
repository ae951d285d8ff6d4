/**
 * `PUT /artifacts/<sha256>` on an API whose store is an S3 bucket (s3rver on 127.0.0.1): only
 * bytes that hash to the address reach the bucket, a repeated upload is a no-op, and a damaged
 * object in the bucket is replaced by the next upload instead of being answered "already stored";
 * `GET /artifacts/<sha256>` serves verified bytes and refuses a corrupted object with a clear code.
 */
import { createHash, randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiServer } from "../../src/api/server.ts";
import { openArtifactStore } from "../../src/platform/artifacts/open.ts";
import { createS3Client, type S3ArtifactStore } from "../../src/platform/artifacts/s3-store.ts";
import { createWorkerToken } from "../../src/platform/auth/worker-tokens.ts";
import { startTestApiServer } from "../helpers/api-server.ts";
import { mintToken } from "../helpers/auth.ts";
import { useTestDatabase } from "../helpers/database.ts";
import { createRunRows } from "../helpers/rows.ts";
import { startTestS3, type TestS3 } from "../helpers/s3.ts";
import { useTempDir } from "../helpers/tmp.ts";

const t = useTestDatabase();
const dir = useTempDir("artifact-upload-s3");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
let s3: TestS3;
let store: S3ArtifactStore;
let server: ApiServer;
let secret: string;

beforeAll(async () => {
  s3 = await startTestS3();
  store = openArtifactStore(s3.settings(join(dir, "api"))) as S3ArtifactStore;
  server = await startTestApiServer(t, { artifacts: store });
  ({ secret } = await createWorkerToken(t.db, { name: "uploader", labels: [] }));
});
afterAll(async () => {
  await server?.close();
  await s3?.close();
});

const put = (address: string, content: Buffer) =>
  fetch(new URL(`/artifacts/${address}`, server.url), {
    method: "PUT",
    body: content,
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/octet-stream" },
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as { stored?: boolean; code?: string } }));
const client = () => createS3Client({ region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true });
/** Overwrite an object through the S3 API with one byte flipped, keeping its length and metadata. */
const damage = async (content: Buffer) => {
  const flipped = Buffer.from(content);
  flipped[100] = (flipped[100] ?? 0) ^ 0xff;
  await client().send(
    new PutObjectCommand({
      Bucket: s3.bucket,
      Key: store.keyOf(sha(content)),
      Body: flipped,
      Metadata: { sha256: sha(content), size: String(content.length) },
    }),
  );
};
const inBucket = (address: string) =>
  client()
    .send(new HeadObjectCommand({ Bucket: s3.bucket, Key: store.keyOf(address) }))
    .then(
      (o) => o.ContentLength,
      () => null,
    );

describe("PUT /artifacts/<sha256> into an S3 bucket", () => {
  it("stores verified bytes once, refuses others, and replaces a damaged object", async () => {
    const content = randomBytes(70_000);
    const wrong = "0".repeat(64);
    expect(await put(wrong, content)).toMatchObject({ status: 422, body: { code: "CHECKSUM_MISMATCH" } });
    expect(await inBucket(wrong)).toBeNull();

    expect(await put(sha(content), content)).toMatchObject({ status: 201, body: { stored: true } });
    expect(await inBucket(sha(content))).toBe(content.length);
    expect(await put(sha(content), content)).toMatchObject({ status: 200, body: { stored: false } });

    // Damaged in the bucket (same length and metadata): the upload verifies, finds it, replaces it.
    await damage(content);
    expect(await put(sha(content), content)).toMatchObject({ status: 201, body: { stored: true } });
    const elsewhere = openArtifactStore(s3.settings(join(dir, "elsewhere")));
    expect(await elsewhere.has(sha(content), { verify: true })).toBe(true);
  });

  it("GET serves the bucket's bytes, verified; a corrupted object is refused with ARTIFACT_CORRUPT", async () => {
    const content = randomBytes(40_000);
    const { run } = await createRunRows(t.db);
    await t.db.artifact.create({
      data: { runId: run.id, kind: "WEIGHTS", sha256: sha(content), sizeBytes: content.length },
    });
    expect(await put(sha(content), content)).toMatchObject({ status: 201 });
    const token = await mintToken(t.db, "ADMIN");
    const get = () =>
      fetch(new URL(`/artifacts/${sha(content)}`, server.url), {
        headers: { authorization: `Bearer ${token}` },
      });
    // The API's cache holds the upload it staged; drop it, as on a fresh API replica.
    const dropCache = () =>
      rmSync(join(dir, "api", "artifact-cache", sha(content).slice(0, 2), sha(content).slice(2)), {
        force: true,
      });
    dropCache();
    const ok = await get();
    expect(ok.status).toBe(200);
    expect(Buffer.from(await ok.arrayBuffer())).toEqual(content);

    await damage(content);
    dropCache();
    const refused = await get();
    expect(refused.status).toBe(500);
    const body = (await refused.json()) as { code: string; error: string };
    expect(body.code).toBe("ARTIFACT_CORRUPT");
    expect(body.error).not.toMatch(/\/tmp|s3:\/\/|127\.0\.0\.1/);
  });
});
