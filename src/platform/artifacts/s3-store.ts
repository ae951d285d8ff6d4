/**
 * Artifacts in an S3-compatible bucket (AWS S3, MinIO, Ceph, …), for platforms whose API and
 * workers run on several machines. Same contract as the local store (`store.ts`):
 *
 * - Content-addressed keys: `<prefix><sha256[0..2]>/<sha256>`; storing the same bytes twice is
 *   one HEAD. Each object carries its sha256 and size as metadata, written by us only.
 * - Large files go up as multipart uploads (`@aws-sdk/lib-storage`, `partSizeBytes` parts, a few
 *   at once); an upload either completes whole or leaves no object (S3 publishes an object only
 *   when its upload completes; failed uploads are aborted).
 * - Downloads stream into a local cache (a LocalArtifactStore under `DATA_DIR/artifact-cache`)
 *   and are hashed on the way: bytes that do not hash to their key are refused with
 *   ArtifactIntegrityError and never handed out. `getFile` returns the cached file, so a worker
 *   hands its job a local path as with the local store.
 * - `has` trusts no object whose length differs from the size its metadata records (a truncated
 *   copy) or that lacks our metadata; `verify` downloads and hashes.
 * - Uploads of streams (the API's `PUT /artifacts`) are staged and verified in the cache first,
 *   so nothing reaches the bucket under an address its bytes do not hash to.
 */
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import {
  type ArtifactCheck,
  ArtifactIntegrityError,
  type ArtifactStore,
  ArtifactStoreUnavailableError,
  assertContentAddress,
  type LocalArtifactStore,
  putOpenFile,
  type StoredArtifact,
} from "./store.ts";

export interface S3StoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix; a trailing "/" is added when missing. */
  prefix: string;
  /** Verified local copies of downloads, and staging for uploaded streams. */
  cache: LocalArtifactStore;
  /** Where the server is, for messages (unset: AWS). */
  endpoint?: string;
  /** Multipart part size (S3's minimum is 5 MiB). */
  partSizeBytes?: number;
}

/** 16 MiB parts: a 2 GB checkpoint is 128 parts, far below S3's 10,000, and 4 in flight use 64 MiB. */
export const DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024;
const PARTS_IN_FLIGHT = 4;

/** An S3 client from settings; credentials come from the AWS SDK's standard chain. */
export function createS3Client(o: { region: string; endpoint?: string; forcePathStyle: boolean }): S3Client {
  // The SDK warns on Node 20 that its releases after January 2027 will need Node 22. Ours is
  // pinned (package.json) to one that runs on 20, so the warning would only alarm users of
  // `serve`, `worker` and `doctor`; an operator can still turn it on by setting the variable.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  return new S3Client({
    region: o.region,
    forcePathStyle: o.forcePathStyle,
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    // Our own sha256 verifies every byte; the SDK's default CRC checksums are not understood by
    // every S3-compatible server, so send them only where an operation requires one.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

const CREDENTIAL_CODES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "AccessDenied",
  "Forbidden",
  "InvalidToken",
  "ExpiredToken",
  "CredentialsProviderError",
]);

export class S3ArtifactStore implements ArtifactStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly cache: LocalArtifactStore;
  private readonly endpoint: string | undefined;
  private readonly partSizeBytes: number;

  constructor(o: S3StoreOptions) {
    this.client = o.client;
    this.bucket = o.bucket;
    this.prefix = o.prefix === "" || o.prefix.endsWith("/") ? o.prefix : `${o.prefix}/`;
    this.cache = o.cache;
    this.endpoint = o.endpoint;
    this.partSizeBytes = o.partSizeBytes ?? DEFAULT_PART_SIZE_BYTES;
  }

  get location(): string {
    return `s3://${this.bucket}/${this.prefix}${this.endpoint ? ` at ${this.endpoint}` : ""}`;
  }

  /** The object key of an artifact. */
  keyOf(sha256: string): string {
    assertContentAddress(sha256);
    return `${this.prefix}${sha256.slice(0, 2)}/${sha256}`;
  }

  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      // HEAD has no body: a missing bucket is a bare 404 here, not NoSuchBucket.
      throw this.explain(statusOf(error) === 404 ? { name: "NoSuchBucket" } : error, "reach the bucket");
    }
  }

  putFile(path: string): Promise<StoredArtifact> {
    return putOpenFile(
      path,
      (a) => this.has(a.sha256, { sizeBytes: a.sizeBytes }),
      (read, a) => this.upload(read(), a),
    );
  }

  async putStream(
    source: Readable | NodeJS.ReadableStream,
    expected: { sha256?: string; sizeBytes?: number } = {},
  ): Promise<StoredArtifact> {
    // Staged (hashed, checked against `expected`) in the cache before anything is uploaded.
    const staged = await this.cache.putStream(source, expected);
    // Always uploaded, as the local store always writes: the caller may be replacing a damaged
    // object that a HEAD would take for whole (the API's upload route verified it first).
    return this.upload(createReadStream(this.cache.pathOf(staged.sha256)), staged);
  }

  async getFile(sha256: string): Promise<string> {
    if (await this.cache.has(sha256)) {
      try {
        return await this.cache.getFile(sha256);
      } catch (error) {
        if (!(error instanceof ArtifactIntegrityError)) throw error;
        // The cached copy was damaged (and removed): download it again.
      }
    }
    return this.download(sha256);
  }

  async has(sha256: string, check: ArtifactCheck = {}): Promise<boolean> {
    const head = await this.head(sha256);
    if (!head) return false;
    const size = head.ContentLength;
    if (head.Metadata?.sha256 !== sha256 || size === undefined || Number(head.Metadata?.size) !== size)
      return false; // not written by a store, or truncated since
    if (check.sizeBytes !== undefined && size !== Number(check.sizeBytes)) return false;
    if (check.verify) {
      try {
        await this.download(sha256); // hashes the bucket's copy, not the cache's
      } catch (error) {
        if (error instanceof ArtifactIntegrityError) return false;
        throw error;
      }
    }
    return true;
  }

  private async head(sha256: string): Promise<HeadObjectCommandOutput | null> {
    try {
      return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha256) }));
    } catch (error) {
      if (statusOf(error) === 404 && codeOf(error) !== "NoSuchBucket") {
        // HEAD answers 404 without a body for a missing bucket too: tell the two apart.
        await this.check();
        return null;
      }
      throw this.explain(error, `look up artifact ${sha256}`);
    }
  }

  /** The bucket's copy into the cache, hashed on the way; refused (and not cached) unless it matches. */
  private async download(sha256: string): Promise<string> {
    const key = this.keyOf(sha256);
    let body: Readable;
    let sizeBytes: number | undefined;
    try {
      const object = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      body = object.Body as Readable;
      sizeBytes = object.ContentLength;
    } catch (error) {
      if (codeOf(error) === "NoSuchKey")
        throw new Error(`artifact ${sha256} is not in the store at ${this.location}`);
      throw this.explain(error, `download artifact ${sha256}`);
    }
    try {
      await this.cache.putStream(body, { sha256, ...(sizeBytes !== undefined ? { sizeBytes } : {}) });
    } catch (error) {
      if (error instanceof ArtifactIntegrityError)
        throw new ArtifactIntegrityError(
          `artifact ${sha256} in ${this.location} is corrupt and was not used: ${error.message}. ` +
            `Upload the artifact again (the same bytes replace object ${key}) or delete that object.`,
        );
      throw error;
    }
    return this.cache.pathOf(sha256);
  }

  private async upload(body: Readable, a: StoredArtifact): Promise<StoredArtifact> {
    const key = this.keyOf(a.sha256);
    try {
      await new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: key,
          Body: body,
          // Told, not guessed: lib-storage reads a file stream's size from its start/end (Infinity
          // for one opened without an end) and refuses the upload when the parts do not add up.
          ContentLength: a.sizeBytes,
          ContentType: "application/octet-stream",
          Metadata: { sha256: a.sha256, size: String(a.sizeBytes) },
        },
        partSize: this.partSizeBytes,
        queueSize: PARTS_IN_FLIGHT,
        leavePartsOnError: false, // abort the multipart upload: no parts left billed in the bucket
      }).done();
    } catch (error) {
      throw this.explain(error, `upload artifact ${a.sha256}`);
    }
    // The object's length is what we sent: the stream was not cut short on the way.
    if (!(await this.has(a.sha256, { sizeBytes: a.sizeBytes })))
      throw new ArtifactStoreUnavailableError(
        `artifact ${a.sha256}: ${this.location} did not keep the ${a.sizeBytes} bytes uploaded to ${key}`,
      );
    return a;
  }

  /** An S3 failure as one line that says what to fix (no credentials in it). */
  private explain(error: unknown, doing: string): Error {
    const code = codeOf(error);
    const where = this.endpoint ? `at ${this.endpoint}` : "on AWS S3";
    if (code === "NoSuchBucket")
      return new ArtifactStoreUnavailableError(
        `S3_BUCKET: bucket "${this.bucket}" does not exist ${where}; create it, or fix S3_BUCKET / S3_ENDPOINT`,
      );
    if (CREDENTIAL_CODES.has(code) || statusOf(error) === 403)
      return new ArtifactStoreUnavailableError(
        `S3 refused the credentials for bucket "${this.bucket}" ${where} (${CREDENTIAL_CODES.has(code) ? code : "HTTP 403"}): ` +
          "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile / instance role) and the bucket's policy",
      );
    if (!(error instanceof S3ServiceException))
      return new ArtifactStoreUnavailableError(
        `cannot ${doing}: S3 ${where} did not answer (${code || (error as Error).message}); check S3_ENDPOINT and the network`,
      );
    return new ArtifactStoreUnavailableError(
      `cannot ${doing} in bucket "${this.bucket}" ${where}: ${code} ${(error as Error).message}`,
    );
  }
}

function codeOf(error: unknown): string {
  const e = error as { name?: string; Code?: string; code?: string };
  return e?.Code ?? e?.code ?? e?.name ?? "";
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}
