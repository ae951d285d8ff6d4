/**
 * Content-addressed artifact storage (checkpoints, weights, ONNX models): files are stored
 * under their sha256 and verified on read. One interface, two stores: this local directory (the
 * default) and an S3-compatible bucket for several machines (`s3-store.ts`); `open.ts` picks one.
 *
 * Writes are durable and atomic: the bytes go to a uniquely named temporary file (hashed on the
 * way), which is fsynced, renamed onto its address, and the directory fsynced — a crash leaves
 * either no artifact or the whole one, never a truncated file under a valid address. Every
 * failure removes its temporary file; ones a killed process left behind are swept at start.
 */
import { createHash, randomUUID } from "node:crypto";
import { createWriteStream, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { mkdir, open, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { sha256File } from "../../engine/checkpoint/file-hash.ts";

export interface StoredArtifact {
  sha256: string;
  sizeBytes: number;
}

/** What `has` checks besides presence. */
export interface ArtifactCheck {
  /** The size the caller knows (from the uploader or the artifact row): one stat, no read. */
  sizeBytes?: number | bigint;
  /** Hash the bytes (a full read): for callers that would otherwise keep a corrupt copy for good. */
  verify?: boolean;
}

export interface ArtifactStore {
  /** Store a file; returns its content address. Storing the same bytes twice is free. */
  putFile(path: string): Promise<StoredArtifact>;
  /**
   * Store a stream's bytes (an upload, a download); with `expected`, bytes that do not match are
   * refused with ArtifactIntegrityError and nothing is stored.
   */
  putStream(
    source: Readable | NodeJS.ReadableStream,
    expected?: { sha256?: string; sizeBytes?: number },
  ): Promise<StoredArtifact>;
  /** A local path holding the artifact's bytes, verified against its sha256. */
  getFile(sha256: string): Promise<string>;
  /**
   * Whether the artifact is stored and passes `check`. Without a check, presence and a non-empty
   * file (a crash before fsync used to leave zero-length files); `getFile` still verifies the
   * hash of whatever it hands out.
   */
  has(sha256: string, check?: ArtifactCheck): Promise<boolean>;
  /** Where the artifacts live, for logs and `incubator doctor` (no credentials in it). */
  readonly location: string;
  /** Throws ArtifactStoreUnavailableError, saying what to fix, unless the store can be written. */
  check(): Promise<void>;
}

/** The store cannot be reached or written (missing bucket, refused credentials, read-only folder). */
export class ArtifactStoreUnavailableError extends Error {
  override name = "ArtifactStoreUnavailableError";
}

export class ArtifactIntegrityError extends Error {
  override name = "ArtifactIntegrityError";
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Every store's addresses are lowercase hex sha256; anything else is a caller's bug. */
export function assertContentAddress(sha256: string): void {
  if (!SHA256.test(sha256)) throw new Error(`not a sha256 content address: "${sha256}"`);
}

const EMPTY_SHA256 = createHash("sha256").digest("hex");
/** Temporary files untouched this long belong to a process that died mid-write. */
const ABANDONED_TEMP_MS = 60 * 60 * 1000;

/** fsync a file or directory (POSIX: a directory's fsync makes a rename in it durable). */
async function fsyncPath(path: string): Promise<void> {
  if (process.platform === "win32") return; // directories cannot be opened there; NTFS journals renames
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A file's content address, then — unless `stored` says the store has it — its bytes to `write`.
 * Both reads go through one open file descriptor: a job that renames its next checkpoint over
 * `path` meanwhile changes the name, not the file we are reading, so what is stored is exactly
 * what was hashed (reading by name twice refused such files, and the worker lost the batch).
 */
export async function putOpenFile(
  path: string,
  stored: (a: StoredArtifact) => Promise<boolean>,
  write: (read: () => Readable, a: StoredArtifact) => Promise<StoredArtifact>,
): Promise<StoredArtifact> {
  const file = await open(path, "r");
  try {
    const read = () => file.createReadStream({ start: 0, autoClose: false });
    const hash = createHash("sha256");
    let sizeBytes = 0;
    for await (const chunk of read()) {
      hash.update(chunk as Buffer);
      sizeBytes += (chunk as Buffer).length;
    }
    const artifact = { sha256: hash.digest("hex"), sizeBytes };
    if (await stored(artifact)) return artifact;
    return await write(read, artifact);
  } finally {
    await file.close();
  }
}

/** `<root>/ab/cdef…` — two-level fan-out keeps directories small; temporaries in `<root>/.tmp`. */
export class LocalArtifactStore implements ArtifactStore {
  readonly root: string;
  private readonly tempDir: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.tempDir = join(this.root, ".tmp");
    mkdirSync(this.tempDir, { recursive: true });
    this.sweepAbandonedTemps();
  }

  get location(): string {
    return this.root;
  }

  async check(): Promise<void> {
    const probe = join(this.tempDir, `${process.pid}-${randomUUID()}.probe`);
    try {
      await writeFile(probe, "");
      await rm(probe, { force: true });
    } catch (error) {
      throw new ArtifactStoreUnavailableError(
        `the artifact folder ${this.root} is not writable (${(error as NodeJS.ErrnoException).code ?? "error"}); ` +
          "fix its permissions or point DATA_DIR elsewhere",
      );
    }
  }

  /** Where the artifact's file is (or would be); not verified: `getFile` verifies. */
  pathOf(sha256: string): string {
    assertContentAddress(sha256);
    return join(this.root, sha256.slice(0, 2), sha256.slice(2));
  }

  putFile(path: string): Promise<StoredArtifact> {
    return putOpenFile(
      path,
      (a) => this.has(a.sha256, { sizeBytes: a.sizeBytes }),
      (read, a) => this.putStream(read(), a),
    );
  }

  /**
   * Replaces a damaged copy at the same address; concurrent writers of the same bytes each finish
   * with the whole file in place.
   */
  async putStream(
    source: Readable | NodeJS.ReadableStream,
    expected: { sha256?: string; sizeBytes?: number } = {},
  ): Promise<StoredArtifact> {
    const temp = join(this.tempDir, `${process.pid}-${randomUUID()}`);
    try {
      const hash = createHash("sha256");
      let sizeBytes = 0;
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          sizeBytes += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(source, hashing, createWriteStream(temp, { flags: "wx" }));
      const sha256 = hash.digest("hex");
      if (expected.sha256 !== undefined && sha256 !== expected.sha256) {
        throw new ArtifactIntegrityError(
          `expected artifact ${expected.sha256}, but the bytes (${sizeBytes}) hash to ${sha256}; nothing was stored`,
        );
      }
      if (expected.sizeBytes !== undefined && sizeBytes !== expected.sizeBytes) {
        throw new ArtifactIntegrityError(
          `artifact ${sha256}: expected ${expected.sizeBytes} bytes, got ${sizeBytes}; nothing was stored`,
        );
      }
      await fsyncPath(temp); // the bytes are on disk before any name points at them
      const target = this.pathOf(sha256);
      const createdDir = await mkdir(dirname(target), { recursive: true });
      await rename(temp, target);
      await fsyncPath(dirname(target)); // the rename itself survives a crash
      if (createdDir) await fsyncPath(this.root); // and so does a new fan-out directory
      return { sha256, sizeBytes };
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  async getFile(sha256: string): Promise<string> {
    const path = this.pathOf(sha256);
    const before = await this.statOf(path);
    if (!before) throw new Error(`artifact ${sha256} is not in the store at ${this.root}`);
    const actual = await sha256File(path);
    if (actual !== sha256) {
      await this.discard(path, before);
      throw new ArtifactIntegrityError(
        `artifact ${sha256} is corrupt (its bytes hash to ${actual}); removed it`,
      );
    }
    return path;
  }

  async has(sha256: string, check: ArtifactCheck = {}): Promise<boolean> {
    const path = this.pathOf(sha256);
    const found = await this.statOf(path);
    if (!found) return false;
    if (check.sizeBytes !== undefined) {
      // The caller's size may be the wrong one: answer no, but leave the file (a put replaces it).
      if (found.size !== Number(check.sizeBytes)) return false;
    } else if (found.size === 0 && sha256 !== EMPTY_SHA256) {
      await this.discard(path, found);
      return false;
    }
    if (check.verify && (await sha256File(path)) !== sha256) {
      await this.discard(path, found);
      return false;
    }
    return true;
  }

  private async statOf(path: string) {
    try {
      const found = await stat(path);
      return found.isFile() ? found : null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
  }

  /** Remove a damaged file — unless a writer has meanwhile renamed a good one onto its name. */
  private async discard(path: string, damaged: { ino: number; dev: number }): Promise<void> {
    const now = await this.statOf(path);
    if (now && now.ino === damaged.ino && now.dev === damaged.dev) await rm(path, { force: true });
  }

  private sweepAbandonedTemps(): void {
    const cutoff = Date.now() - ABANDONED_TEMP_MS;
    for (const name of readdirSync(this.tempDir)) {
      const path = join(this.tempDir, name);
      try {
        if (statSync(path).mtimeMs < cutoff) rmSync(path, { force: true });
      } catch {
        // another process removed it first
      }
    }
  }
}
