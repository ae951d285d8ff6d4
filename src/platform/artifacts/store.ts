/**
 * Content-addressed artifact storage (checkpoints, weights, ONNX models): files are stored
 * under their sha256 and verified on read. One interface; the local directory is the default,
 * and an S3-compatible store for several machines plugs in behind the same three calls.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, renameSync, statSync } from "node:fs";
import { copyFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { sha256File } from "../../engine/checkpoint/file-hash.ts";

export interface StoredArtifact {
  sha256: string;
  sizeBytes: number;
}

export interface ArtifactStore {
  /** Store a file; returns its content address. Storing the same bytes twice is free. */
  putFile(path: string): Promise<StoredArtifact>;
  /** A local path holding the artifact's bytes, verified against its sha256. */
  getFile(sha256: string): Promise<string>;
  has(sha256: string): Promise<boolean>;
}

export class ArtifactIntegrityError extends Error {
  override name = "ArtifactIntegrityError";
}

const SHA256 = /^[0-9a-f]{64}$/;

/** `<root>/ab/cdef…` — two-level fan-out keeps directories small. */
export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    mkdirSync(this.root, { recursive: true });
  }

  private pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256 content address: "${sha256}"`);
    return join(this.root, sha256.slice(0, 2), sha256.slice(2));
  }

  async putFile(path: string): Promise<StoredArtifact> {
    const sha256 = await sha256File(path);
    const target = this.pathOf(sha256);
    const sizeBytes = statSync(path).size;
    if (!existsSync(target)) {
      mkdirSync(join(this.root, sha256.slice(0, 2)), { recursive: true });
      // Copy to a temp name and rename: readers never see a half-written artifact.
      const temp = `${target}.${randomBytes(4).toString("hex")}.tmp`;
      await copyFile(path, temp);
      renameSync(temp, target);
    }
    return { sha256, sizeBytes };
  }

  async getFile(sha256: string): Promise<string> {
    const path = this.pathOf(sha256);
    if (!existsSync(path)) throw new Error(`artifact ${sha256} is not in the store at ${this.root}`);
    const actual = await sha256File(path);
    if (actual !== sha256) {
      await rm(path, { force: true });
      throw new ArtifactIntegrityError(
        `artifact ${sha256} is corrupt (its bytes hash to ${actual}); removed it`,
      );
    }
    return path;
  }

  async has(sha256: string): Promise<boolean> {
    return existsSync(this.pathOf(sha256));
  }
}
