/**
 * The local artifact store on a real directory: atomic, uniquely named writes that leave no
 * temporary file behind on any failure, and `has` that does not trust a damaged file.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ArtifactIntegrityError, LocalArtifactStore } from "../../src/platform/artifacts/store.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("artifact-store");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const bytes = (n: number, seed = 1) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
let stores = 0;
const newStore = () => new LocalArtifactStore(join(dir, `store-${++stores}`));
const temps = (store: LocalArtifactStore) => readdirSync(join(store.root, ".tmp"));
const source = (name: string, content: Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

describe("LocalArtifactStore writes", () => {
  it("stores a file under its sha256, once, and leaves no temporary file", async () => {
    const store = newStore();
    const content = bytes(100_000);
    const path = source("a.bin", content);
    const [first, second] = await Promise.all([store.putFile(path), store.putFile(path)]);
    expect(first).toEqual({ sha256: sha(content), sizeBytes: content.length });
    expect(second).toEqual(first);
    expect(readFileSync(await store.getFile(first.sha256))).toEqual(content);
    expect(temps(store)).toEqual([]);
  });

  it("a stream that fails mid-copy stores nothing and removes its temporary file", async () => {
    const store = newStore();
    const failing = Readable.from(
      (async function* () {
        yield bytes(64_000);
        throw new Error("connection reset");
      })(),
    );
    await expect(store.putStream(failing)).rejects.toThrow("connection reset");
    expect(temps(store)).toEqual([]);
  });

  it("bytes that do not match the expected hash or size are refused, and nothing is left", async () => {
    const store = newStore();
    const content = bytes(5000);
    await expect(store.putStream(Readable.from([content]), { sha256: "0".repeat(64) })).rejects.toThrow(
      ArtifactIntegrityError,
    );
    await expect(
      store.putStream(Readable.from([content]), { sha256: sha(content), sizeBytes: 4999 }),
    ).rejects.toThrow(/expected 4999 bytes, got 5000/);
    expect(await store.has(sha(content))).toBe(false);
    expect(temps(store)).toEqual([]);
  });

  it("sweeps temporary files a killed process left behind long ago, not fresh ones", () => {
    const root = join(dir, "sweep");
    new LocalArtifactStore(root);
    const old = join(root, ".tmp", "123-old");
    const fresh = join(root, ".tmp", "456-fresh");
    writeFileSync(old, "half");
    writeFileSync(fresh, "being written");
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    utimesSync(old, twoHoursAgo, twoHoursAgo);
    new LocalArtifactStore(root);
    expect(readdirSync(join(root, ".tmp"))).toEqual(["456-fresh"]);
  });
});

describe("LocalArtifactStore.has does not trust a damaged file", () => {
  it("rejects a truncated file by size, a zero-length one always, and a corrupt one when verifying", async () => {
    const store = newStore();
    const content = bytes(10_000, 7);
    const { sha256 } = await store.putFile(source("b.bin", content));
    const stored = join(store.root, sha256.slice(0, 2), sha256.slice(2));
    expect(await store.has(sha256, { sizeBytes: content.length, verify: true })).toBe(true);

    truncateSync(stored, 4096); // what a crash before fsync can leave
    expect(await store.has(sha256, { sizeBytes: content.length })).toBe(false);
    expect(await store.has(sha256, { sizeBytes: BigInt(content.length) })).toBe(false);
    expect(await store.has(sha256)).toBe(true); // presence only: getFile still verifies
    await expect(store.getFile(sha256)).rejects.toThrow(ArtifactIntegrityError);
    expect(await store.has(sha256)).toBe(false); // getFile removed it

    // Putting the bytes again repairs a damaged copy (the size check sees it).
    await store.putFile(source("b.bin", content));
    truncateSync(stored, 0);
    expect(await store.has(sha256)).toBe(false); // zero-length: corrupt, removed
    await store.putFile(source("b.bin", content));

    // Same size, wrong bytes: only hashing finds it.
    const flipped = Buffer.from(content);
    flipped[5000] = flipped[5000]! ^ 0xff;
    writeFileSync(stored, flipped);
    expect(await store.has(sha256, { sizeBytes: content.length })).toBe(true);
    expect(await store.has(sha256, { sizeBytes: content.length, verify: true })).toBe(false);
    await store.putFile(source("b.bin", content));
    expect(statSync(stored).size).toBe(content.length);
    expect(readFileSync(await store.getFile(sha256))).toEqual(content);
  });

  it("the empty artifact is a valid zero-length file", async () => {
    const store = newStore();
    const { sha256 } = await store.putFile(source("empty.bin", Buffer.alloc(0)));
    expect(await store.has(sha256)).toBe(true);
    expect(await store.has(sha256, { verify: true })).toBe(true);
  });
});
