import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll } from "vitest";
import type { Dataset } from "../../src/data/dataset.ts";
import { encodeIdx } from "../../src/data/formats/idx.ts";
import { BatchLoader } from "../../src/data/loader.ts";

/** A temporary directory removed after the test file's tests. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `incubator-${prefix}-`));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic pseudo-random bytes (test fixtures only; not the project Rng on purpose). */
export function fixtureBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

export function equalBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * Writes a small MNIST-like split (train, or t10k = test) (`n` images of h×w, labels cycling over 10 classes) as
 * IDX files into `dir`, gzip-compressed when `gzip`; returns the file sizes.
 */
export function writeIdxSplit(
  dir: string,
  o: { n: number; h: number; w: number; gzip?: boolean; seed?: number; split?: "train" | "t10k" },
): { imagesBytes: number; labelsBytes: number } {
  const images = encodeIdx([o.n, o.h, o.w], fixtureBytes(o.n * o.h * o.w, o.seed ?? 7));
  const labels = encodeIdx(
    [o.n],
    Uint8Array.from({ length: o.n }, (_, i) => (i * 3) % 10),
  );
  const [img, lab] = o.gzip ? [gzipSync(images), gzipSync(labels)] : [images, labels];
  const suffix = o.gzip ? ".gz" : "";
  mkdirSync(dir, { recursive: true });
  const split = o.split ?? "train";
  writeFileSync(join(dir, `${split}-images-idx3-ubyte${suffix}`), img);
  writeFileSync(join(dir, `${split}-labels-idx1-ubyte${suffix}`), lab);
  return { imagesBytes: img.length, labelsBytes: lab.length };
}

/** The first `count` batches two datasets give under the same loader options, compared exactly. */
export function sameBatches(a: Dataset, b: Dataset, count: number): boolean {
  const options = { batchSize: 16, seed: 5, augment: { outputSize: a.height, hflip: 0.5 } };
  const la = new BatchLoader(a, options);
  const lb = new BatchLoader(b, options);
  for (let k = 0; k < count; k++) {
    const x = la.next();
    const y = lb.next();
    if (!equalBytes(x.images, y.images) || !equalBytes(x.labels, y.labels)) return false;
  }
  return true;
}
