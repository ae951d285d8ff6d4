/**
 * File access for the readers: positioned reads that count bytes (so a worker can report how
 * much of a dataset it actually touched), gzip detection by magic bytes, and a streaming scan
 * that decompresses gzip on the fly without holding the whole file in memory.
 */
import { closeSync, createReadStream, fstatSync, openSync, readSync } from "node:fs";
import { createGunzip } from "node:zlib";
import type { ReadStats } from "./dataset.ts";
import { DataError } from "./errors.ts";

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

export function openForRead(path: string, stats: ReadStats): number {
  try {
    const fd = openSync(path, "r");
    stats.filesOpened++;
    return fd;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === "ENOENT" ? "the file does not exist; check the dataset path" : `cannot open it (${code})`;
    throw new DataError(hint, { source: path, cause: err });
  }
}

/** Random access to an uncompressed file; every read is counted in `stats`. */
export class RandomAccessFile {
  readonly size: number;
  private fd: number | null;

  constructor(
    readonly path: string,
    private readonly stats: ReadStats,
  ) {
    this.fd = openForRead(path, stats);
    this.size = fstatSync(this.fd).size;
  }

  /** Reads exactly `length` bytes at `offset` into `out` (or a new array); a short read is an error. */
  read(offset: number, length: number, out?: Uint8Array): Uint8Array {
    if (this.fd === null) throw new Error(`${this.path}: read after close`);
    const buf = out ?? new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, length - done, offset + done);
      if (n === 0) {
        throw new DataError(
          `unexpected end of file reading ${length} bytes at offset ${offset} (file has ${this.size} bytes); ` +
            `the file is truncated or changed while open`,
          { source: this.path },
        );
      }
      done += n;
    }
    this.stats.bytesRead += length;
    return buf;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** True when the file starts with the gzip magic bytes (extension is not trusted). */
export function isGzipFile(path: string, stats: ReadStats): boolean {
  const f = new RandomAccessFile(path, stats);
  try {
    if (f.size < 2) return false;
    const head = f.read(0, 2);
    return head[0] === GZIP_MAGIC_0 && head[1] === GZIP_MAGIC_1;
  } finally {
    f.close();
  }
}

/**
 * Streams the (decompressed, if gzip) content of a file chunk by chunk into `consume`. When
 * `consume` returns true the scan stops early (e.g. all wanted records were found). Bytes read
 * from disk are counted in `stats`.
 */
export async function scanFile(
  path: string,
  stats: ReadStats,
  consume: (chunk: Uint8Array) => boolean | undefined,
): Promise<void> {
  const gz = isGzipFile(path, stats);
  const raw = createReadStream(path, { highWaterMark: 1 << 20 });
  stats.filesOpened++;
  raw.on("data", (c) => {
    stats.bytesRead += c.length;
  });
  const stream = gz ? raw.pipe(createGunzip()) : raw;
  // A truncated gzip file fails in the gunzip stream, which `pipe` does not forward.
  let rawError: unknown = null;
  raw.on("error", (e) => {
    rawError = e;
    stream.destroy(e);
  });
  try {
    for await (const chunk of stream) {
      const c = chunk as Buffer;
      if (consume(new Uint8Array(c.buffer, c.byteOffset, c.length))) break;
    }
  } catch (err) {
    const e = (rawError ?? err) as NodeJS.ErrnoException;
    if (e.code === "Z_BUF_ERROR" || /unexpected end of file/i.test(String(e.message))) {
      throw new DataError("gzip stream ends early: the file is truncated (re-download or re-copy it)", {
        source: path,
        cause: e,
      });
    }
    if (e.code === "Z_DATA_ERROR") {
      throw new DataError(`corrupt gzip data (${e.message}); re-download or re-copy the file`, {
        source: path,
        cause: e,
      });
    }
    if (e instanceof DataError) throw e;
    throw new DataError(`read failed: ${e.message}`, { source: path, cause: e });
  } finally {
    raw.destroy();
    if (stream !== raw) stream.destroy();
  }
}

/** Reads a whole file, decompressing gzip. For small files (label files, metadata). */
export async function readWholeFile(path: string, stats: ReadStats): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  await scanFile(path, stats, (c) => {
    parts.push(Uint8Array.from(c));
    total += c.length;
    return undefined;
  });
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Collects fixed-size records from a byte stream that starts with a header of `dataOffset`
 * bytes. `want` maps record number → destination slot (sorted ascending record numbers in
 * `wantSorted`); each wanted record is copied into `out` at slot*recordBytes. Records not
 * wanted are skipped without being kept, so memory is only what the shard needs.
 */
export class RecordCollector {
  private pos = 0; // absolute position in the decompressed stream
  private next = 0; // index into wantSorted
  private partial: Uint8Array;
  private partialFill = 0;

  constructor(
    private readonly dataOffset: number,
    private readonly recordBytes: number,
    private readonly wantSorted: Int32Array,
    private readonly slotsFor: (record: number) => readonly number[],
    private readonly out: Uint8Array,
  ) {
    this.partial = new Uint8Array(recordBytes);
  }

  get done(): boolean {
    return this.next >= this.wantSorted.length;
  }

  /** Total decompressed bytes seen so far. */
  get position(): number {
    return this.pos;
  }

  /** Feed the next chunk; returns true once every wanted record is collected. */
  push(chunk: Uint8Array): boolean {
    let off = 0;
    while (off < chunk.length && !this.done) {
      const record = this.wantSorted[this.next]!;
      const start = this.dataOffset + record * this.recordBytes + this.partialFill;
      if (this.pos + (chunk.length - off) <= start) {
        this.pos += chunk.length - off;
        return false;
      }
      if (this.pos < start) {
        off += start - this.pos;
        this.pos = start;
      }
      const need = this.recordBytes - this.partialFill;
      const take = Math.min(need, chunk.length - off);
      this.partial.set(chunk.subarray(off, off + take), this.partialFill);
      this.partialFill += take;
      off += take;
      this.pos += take;
      if (this.partialFill === this.recordBytes) {
        for (const slot of this.slotsFor(record)) this.out.set(this.partial, slot * this.recordBytes);
        this.partialFill = 0;
        // Skip duplicates of the same record (they were all filled above).
        while (this.next < this.wantSorted.length && this.wantSorted[this.next] === record) this.next++;
      }
    }
    this.pos += chunk.length - off;
    return this.done;
  }
}

/**
 * Groups requested record numbers (in the caller's order, duplicates allowed) for a single
 * ascending pass over a file: returns the distinct records sorted, and the output slots of each.
 */
export function planRecordReads(indices: Int32Array): {
  sorted: Int32Array;
  slotsFor: (record: number) => readonly number[];
} {
  const slots = new Map<number, number[]>();
  for (let k = 0; k < indices.length; k++) {
    const r = indices[k]!;
    const s = slots.get(r);
    if (s) s.push(k);
    else slots.set(r, [k]);
  }
  const sorted = Int32Array.from(slots.keys()).sort();
  return { sorted, slotsFor: (r) => slots.get(r) ?? [] };
}

/**
 * Reads the records `indices` (any order, duplicates allowed) of an uncompressed file with one
 * positioned read per run of consecutive records, so reading a shard costs only its bytes.
 */
export function readRecordsAt(
  file: RandomAccessFile,
  dataOffset: number,
  recordBytes: number,
  indices: Int32Array,
  out: Uint8Array,
): void {
  const { sorted, slotsFor } = planRecordReads(indices);
  const maxRun = Math.max(1, Math.floor((8 << 20) / recordBytes)); // ≤ 8 MiB per read
  let k = 0;
  while (k < sorted.length) {
    let end = k + 1;
    while (end < sorted.length && end - k < maxRun && sorted[end] === sorted[end - 1]! + 1) end++;
    const first = sorted[k]!;
    const run = file.read(dataOffset + first * recordBytes, (end - k) * recordBytes);
    for (let j = k; j < end; j++) {
      const rec = run.subarray((j - k) * recordBytes, (j - k + 1) * recordBytes);
      for (const slot of slotsFor(sorted[j]!)) out.set(rec, slot * recordBytes);
    }
    k = end;
  }
}
