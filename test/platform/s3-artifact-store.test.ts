/**
 * The S3 artifact store against a real S3-compatible server (s3rver on 127.0.0.1, through the
 * real AWS SDK): content-addressed objects, multipart uploads, downloads verified before use,
 * `has` that refuses truncated objects, and clear errors for a missing bucket or bad credentials.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openArtifactStore } from "../../src/platform/artifacts/open.ts";
import { createS3Client, type S3ArtifactStore } from "../../src/platform/artifacts/s3-store.ts";
import { ArtifactIntegrityError, LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { startTestS3, type TestS3 } from "../helpers/s3.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("s3-store");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const MiB = 1024 * 1024;
let s3: TestS3;
let stores = 0;
/** A store with a fresh download cache, as on another machine. */
const newStore = (extra: { prefix?: string; partSizeBytes?: number; bucket?: string } = {}) => {
  const settings = s3.settings(join(dir, `machine-${++stores}`), extra);
  return openArtifactStore(
    settings.kind === "s3" && extra.bucket ? { ...settings, bucket: extra.bucket } : settings,
  ) as S3ArtifactStore;
};
const client = () => createS3Client({ region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true });
const source = (name: string, content: Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const head = (key: string) => client().send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));

beforeAll(async () => {
  s3 = await startTestS3();
});
afterAll(async () => {
  await s3?.close();
});

describe("S3ArtifactStore on s3rver", () => {
  it("stores a file under its sha256 key with its size and hash, once; another machine gets the same bytes", async () => {
    const store = newStore({ prefix: "team-a" });
    const content = randomBytes(200_000);
    const stored = await store.putFile(source("small.bin", content));
    expect(stored).toEqual({ sha256: sha(content), sizeBytes: content.length });
    expect(store.keyOf(stored.sha256)).toBe(`team-a/${stored.sha256.slice(0, 2)}/${stored.sha256}`);
    const object = await head(store.keyOf(stored.sha256));
    expect(object.ContentLength).toBe(content.length);
    expect(object.Metadata).toEqual({ sha256: stored.sha256, size: String(content.length) });
    expect(await store.putFile(source("small-again.bin", content))).toEqual(stored);

    const elsewhere = newStore({ prefix: "team-a/" });
    expect(await elsewhere.has(stored.sha256)).toBe(true);
    expect(await elsewhere.has(stored.sha256, { sizeBytes: content.length + 1 })).toBe(false);
    expect(await elsewhere.has(stored.sha256, { verify: true })).toBe(true);
    expect(readFileSync(await elsewhere.getFile(stored.sha256))).toEqual(content);
    // Another prefix is another store.
    expect(await newStore({ prefix: "team-b" }).has(stored.sha256)).toBe(false);
    await expect(newStore().getFile(sha(Buffer.from("never stored")))).rejects.toThrow(
      /is not in the store at s3:\/\//,
    );
  });

  it("a stream is stored only when its bytes hash to the expected address", async () => {
    const store = newStore();
    const content = randomBytes(10_000);
    await expect(store.putStream(Readable.from([content]), { sha256: "0".repeat(64) })).rejects.toThrow(
      ArtifactIntegrityError,
    );
    expect(await store.has(sha(content))).toBe(false);
    expect(await store.has("0".repeat(64))).toBe(false);
    expect(await store.putStream(Readable.from([content]), { sha256: sha(content) })).toEqual({
      sha256: sha(content),
      sizeBytes: content.length,
    });
    expect(await newStore().has(sha(content), { sizeBytes: content.length })).toBe(true);
  });

  it("a file larger than one part goes up as a multipart upload and comes back whole", async () => {
    const store = newStore({ partSizeBytes: 5 * MiB });
    const content = randomBytes(12 * MiB + 12_345);
    const seen = s3.requests.length;
    const stored = await store.putFile(source("large.bin", content));
    const key = `/${s3.bucket}/${store.keyOf(stored.sha256)}`;
    const sent = s3.requests.slice(seen).filter((r) => r.includes(key));
    // One multipart upload of three parts (5 + 5 + 2 MiB), then a HEAD that checks the length.
    expect(sent.filter((r) => r.startsWith("POST ") && r.includes("?uploads"))).toHaveLength(1);
    expect(sent.filter((r) => r.startsWith("PUT ") && /partNumber=\d/.test(r))).toHaveLength(3);
    expect(sent.some((r) => r.startsWith("PUT ") && !r.includes("partNumber"))).toBe(false);
    expect((await head(store.keyOf(stored.sha256))).ContentLength).toBe(content.length);
    const got = await newStore().getFile(stored.sha256);
    expect(sha(readFileSync(got))).toBe(stored.sha256);
  }, 120_000);

  it("a corrupted object is refused on download and not used; a truncated one is not accepted by has()", async () => {
    const store = newStore();
    const content = randomBytes(50_000);
    const stored = await store.putFile(source("victim.bin", content));
    const key = store.keyOf(stored.sha256);
    const metadata = { sha256: stored.sha256, size: String(content.length) };
    // Bit rot: same length and metadata, one byte flipped, written through the S3 API.
    const flipped = Buffer.from(content);
    flipped[1234] = (flipped[1234] ?? 0) ^ 0xff;
    await client().send(
      new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: flipped, Metadata: metadata }),
    );

    const reader = newStore();
    expect(await reader.has(stored.sha256)).toBe(true); // a HEAD cannot see flipped bits…
    expect(await reader.has(stored.sha256, { verify: true })).toBe(false); // …a verified read does
    const refused = reader.getFile(stored.sha256);
    await expect(refused).rejects.toThrow(ArtifactIntegrityError);
    await expect(reader.getFile(stored.sha256)).rejects.toThrow(
      new RegExp(`artifact ${stored.sha256} in s3://.* is corrupt and was not used.*hash to`),
    );
    // Nothing of it reached the machine's cache.
    const cache = new LocalArtifactStore(join(dir, `machine-${stores}`, "artifact-cache"));
    expect(await cache.has(stored.sha256)).toBe(false);

    // Truncated (our metadata, fewer bytes): has() says no, so a put replaces it.
    await client().send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: key,
        Body: content.subarray(0, 1000),
        Metadata: metadata,
      }),
    );
    expect(await reader.has(stored.sha256)).toBe(false);
    // An object at the address without our metadata is not trusted either.
    await client().send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: content }));
    expect(await reader.has(stored.sha256)).toBe(false);
    // Uploading the artifact again repairs it.
    await store.putFile(source("victim-again.bin", content));
    expect(await reader.has(stored.sha256, { verify: true })).toBe(true);
    expect(readFileSync(await newStore().getFile(stored.sha256))).toEqual(content);
  });

  it("a missing bucket is a clear error naming S3_BUCKET, from check, has, put and get alike", async () => {
    const store = newStore({ bucket: "no-such-bucket" });
    const message =
      /^S3_BUCKET: bucket "no-such-bucket" does not exist at http:\/\/127\.0\.0\.1:\d+; create it/;
    await expect(store.check()).rejects.toThrow(message);
    await expect(store.has(sha(Buffer.from("x")))).rejects.toThrow(message);
    await expect(store.putFile(source("orphan.bin", randomBytes(100)))).rejects.toThrow(message);
    await expect(store.getFile(sha(Buffer.from("x")))).rejects.toThrow(message);
    await expect(newStore().check()).resolves.toBeUndefined();
  });

  it("credentials S3 does not accept are a clear error naming the variables, with no secret in it", async () => {
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    try {
      process.env.AWS_ACCESS_KEY_ID = "NOT-A-KEY";
      process.env.AWS_SECRET_ACCESS_KEY = "not-the-secret";
      const store = newStore(); // the SDK's standard chain reads the environment
      const message =
        /^S3 refused the credentials for bucket "artifacts" .*\((InvalidAccessKeyId|HTTP 403)\): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/;
      await expect(store.putFile(source("denied.bin", randomBytes(100)))).rejects.toThrow(message);
      const error = await store.check().then(
        () => null,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(/^S3 refused the credentials for bucket "artifacts"/);
      expect(error?.message).not.toContain("not-the-secret");
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
    }
    // Nothing was written with the refused key.
    const listed = await client().send(new ListObjectsV2Command({ Bucket: s3.bucket }));
    for (const o of listed.Contents ?? []) {
      const body = await client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: o.Key }));
      expect(body.Metadata?.sha256 ?? "").not.toBe("");
    }
  });
});
