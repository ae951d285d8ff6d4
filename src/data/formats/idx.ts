/**
 * IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST…): a 4-byte magic `00 00 <type> <ndims>`,
 * `ndims` big-endian uint32 dimensions, then the data. Images are `[N, H, W]` (or `[N, H, W, C]`),
 * labels `[N]`, both unsigned bytes. Files may be gzip-compressed; that is detected from the
 * content, not the name.
 *
 * Raw files are read record by record with positioned reads, so a shard costs only its bytes.
 * Gzip cannot be seeked, so a gzip file is streamed once and only the wanted records are kept:
 * memory is the shard's, bytes read are the whole compressed file.
 */
import {
  checkIndices,
  type Dataset,
  newReadStats,
  packedDataset,
  type ReadStats,
  validateLabels,
} from "../dataset.ts";
import { DataError } from "../errors.ts";
import {
  isGzipFile,
  planRecordReads,
  RandomAccessFile,
  RecordCollector,
  readRecordsAt,
  readWholeFile,
  scanFile,
} from "../io.ts";

const IDX_TYPES: Record<number, { name: string; bytes: number }> = {
  8: { name: "uint8", bytes: 1 },
  9: { name: "int8", bytes: 1 },
  11: { name: "int16", bytes: 2 },
  12: { name: "int32", bytes: 4 },
  13: { name: "float32", bytes: 4 },
  14: { name: "float64", bytes: 8 },
};

export interface IdxHeader {
  typeCode: number;
  typeName: string;
  dims: number[];
  /** Byte offset of the first record. */
  dataOffset: number;
  /** Bytes per record (product of dims after the first, times element size). */
  recordBytes: number;
  /** Number of records (the first dim). */
  count: number;
}

/**
 * Parses an IDX header from the first bytes of a file. Returns null when `head` is too short to
 * hold the whole header (caller reads more); throws a DataError for a file that is not IDX.
 */
export function parseIdxHeader(head: Uint8Array, source: string): IdxHeader | null {
  if (head.length < 4) return null;
  if (head[0] !== 0 || head[1] !== 0) {
    const hex = Array.from(head.subarray(0, 4), (b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new DataError(
      `not an IDX file: magic bytes are ${hex}, expected 00 00 <type> <ndims> (e.g. 00 00 08 03 for ` +
        `images); is this the right file, or a gzip file that was renamed and then corrupted?`,
      { source },
    );
  }
  const typeCode = head[2]!;
  const type = IDX_TYPES[typeCode];
  if (!type) {
    throw new DataError(`IDX magic has unknown element type 0x${typeCode.toString(16)}`, { source });
  }
  const ndims = head[3]!;
  if (ndims < 1 || ndims > 4) {
    throw new DataError(`IDX magic says ${ndims} dimensions; expected 1 (labels) or 3–4 (images)`, {
      source,
    });
  }
  const dataOffset = 4 + 4 * ndims;
  if (head.length < dataOffset) return null;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  for (let d = 1; d < ndims; d++) {
    if (dims[d] === 0)
      throw new DataError(`IDX dimension ${d} is 0 (dims ${JSON.stringify(dims)})`, { source });
  }
  let recordBytes = type.bytes;
  for (let d = 1; d < ndims; d++) recordBytes *= dims[d]!;
  if (recordBytes > 1 << 28) {
    throw new DataError(
      `IDX record size ${recordBytes} bytes is implausible (dims ${JSON.stringify(dims)})`,
      {
        source,
      },
    );
  }
  return { typeCode, typeName: type.name, dims, dataOffset, recordBytes, count: dims[0]! };
}

/** Reads the header of a (possibly gzip) IDX file; only the first bytes are decompressed. */
export async function readIdxHeader(path: string, stats: ReadStats = newReadStats()): Promise<IdxHeader> {
  if (!isGzipFile(path, stats)) {
    // Raw: two small positioned reads, so a shard's byte count is not inflated by the header.
    const file = new RandomAccessFile(path, stats);
    try {
      const tooShort = () =>
        new DataError(`file too short for an IDX header (${file.size} bytes)`, { source: path });
      if (file.size < 4) throw tooShort();
      const magic = file.read(0, 4);
      parseIdxHeader(magic, path);
      const headerBytes = 4 + 4 * magic[3]!;
      if (file.size < headerBytes) throw tooShort();
      const h = parseIdxHeader(file.read(0, headerBytes), path);
      if (!h) throw tooShort();
      return h;
    } finally {
      file.close();
    }
  }
  let buf = new Uint8Array(0);
  let header: IdxHeader | null = null;
  await scanFile(path, stats, (chunk) => {
    const merged = new Uint8Array(buf.length + chunk.length);
    merged.set(buf);
    merged.set(chunk, buf.length);
    buf = merged;
    header = parseIdxHeader(buf, path);
    return header !== null;
  });
  if (!header)
    throw new DataError(`file too short for an IDX header (${buf.length} bytes)`, { source: path });
  return header;
}

/** Reads an IDX label file (1-D, uint8) into an Int32Array. */
export async function readIdxLabels(path: string, stats: ReadStats = newReadStats()): Promise<Int32Array> {
  const bytes = await readWholeFile(path, stats);
  const h = parseIdxHeader(bytes, path);
  if (!h) throw new DataError(`file too short for an IDX header (${bytes.length} bytes)`, { source: path });
  if (h.dims.length !== 1 || h.typeCode !== 0x08) {
    throw new DataError(
      `expected a label file (1-D uint8, magic 00 00 08 01), found ${h.typeName} with dims ` +
        `${JSON.stringify(h.dims)}; did you swap the images and labels paths?`,
      { source: path },
    );
  }
  checkSize(bytes.length, h, path);
  return Int32Array.from(bytes.subarray(h.dataOffset));
}

function checkSize(actual: number, h: IdxHeader, path: string): void {
  const expected = h.dataOffset + h.count * h.recordBytes;
  if (actual < expected) {
    throw new DataError(
      `truncated: header promises ${h.count} records of ${h.recordBytes} bytes (${expected} bytes in all) ` +
        `but the ${actual === 0 ? "file" : "data"} has ${actual} bytes; re-download or re-copy the file`,
      { source: path },
    );
  }
  if (actual > expected) {
    throw new DataError(
      `${actual - expected} unexpected bytes after the last record (header promises ${expected} bytes); ` +
        `the header and data disagree — the file is corrupt or not IDX`,
      { source: path },
    );
  }
}

export interface IdxDatasetOptions {
  images: string;
  labels: string;
  /** Load only these records (a shard), in this order. Default: all. */
  indices?: ArrayLike<number>;
  numClasses?: number;
  classNames?: readonly string[];
}

/**
 * Opens an IDX image/label pair. The selected records are loaded into memory (MNIST-family
 * datasets are small); `stats.bytesRead` tells how much was read from disk.
 */
export async function openIdxDataset(opts: IdxDatasetOptions): Promise<Dataset> {
  const stats = newReadStats();
  const allLabels = await readIdxLabels(opts.labels, stats);
  const header = await readIdxHeader(opts.images, stats);
  const src = opts.images;
  if (header.typeCode !== 0x08 || (header.dims.length !== 3 && header.dims.length !== 4)) {
    throw new DataError(
      `expected an image file (uint8, dims [N, H, W] or [N, H, W, C]), found ${header.typeName} with dims ` +
        `${JSON.stringify(header.dims)}; did you swap the images and labels paths?`,
      { source: src },
    );
  }
  if (header.count !== allLabels.length) {
    throw new DataError(
      `holds ${header.count} images but ${opts.labels} holds ${allLabels.length} labels; ` +
        `the two files are from different splits (pair train-* with train-*, t10k-* with t10k-*)`,
      { source: src },
    );
  }
  const [, height, width, channelsDim] = header.dims as [number, number, number, number | undefined];
  const channels = channelsDim ?? 1;
  const numClasses = opts.numClasses ?? Math.max(opts.classNames?.length ?? 0, maxLabel(allLabels) + 1);
  validateLabels(allLabels, numClasses, opts.labels);

  const indices = opts.indices ? checkIndices(opts.indices, header.count, src) : identity(header.count);
  const pixels = new Uint8Array(indices.length * header.recordBytes);
  if (isGzipFile(src, stats)) {
    const plan = planRecordReads(indices);
    const collector = new RecordCollector(
      header.dataOffset,
      header.recordBytes,
      plan.sorted,
      plan.slotsFor,
      pixels,
    );
    // Scan to the end even when the shard is complete, so a truncated or padded file is caught.
    let decompressed = 0;
    await scanFile(src, stats, (chunk) => {
      collector.push(chunk);
      decompressed += chunk.length;
      return undefined;
    });
    checkSize(decompressed, header, src);
  } else {
    const file = new RandomAccessFile(src, stats);
    try {
      checkSize(file.size, header, src);
      readRecordsAt(file, header.dataOffset, header.recordBytes, indices, pixels);
    } finally {
      file.close();
    }
  }
  const chw = channels === 1 ? pixels : hwcToChwAll(pixels, indices.length, height, width, channels);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) labels[k] = allLabels[indices[k]!]!;
  return packedDataset({
    numClasses,
    channels,
    height,
    width,
    pixels: chw,
    labels,
    sourceIndices: indices,
    stats,
    source: src,
    classNames: opts.classNames,
  });
}

function identity(n: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

function maxLabel(labels: Int32Array): number {
  let m = -1;
  for (let i = 0; i < labels.length; i++) if (labels[i]! > m) m = labels[i]!;
  return m;
}

function hwcToChwAll(src: Uint8Array, n: number, h: number, w: number, c: number): Uint8Array {
  const out = new Uint8Array(src.length);
  const size = h * w * c;
  for (let k = 0; k < n; k++) {
    const base = k * size;
    for (let p = 0; p < h * w; p++) {
      for (let ch = 0; ch < c; ch++) out[base + ch * h * w + p] = src[base + p * c + ch]!;
    }
  }
  return out;
}

/** Class names of Fashion-MNIST, in label order. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

/** Encodes an IDX file (uint8). Used by tests and by tools that export datasets. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  out[2] = 0x08;
  out[3] = dims.length;
  const view = new DataView(out.buffer);
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  out.set(data, 4 + 4 * dims.length);
  return out;
}
