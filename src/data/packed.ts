/**
 * The packed dataset file: a selection of records (typically one shard) already decoded into
 * one file, so a worker that cached it never touches the source again, and a server can ship
 * a shard in one response whatever the source format (IDX, gzip IDX, CIFAR, image folders).
 *
 * Layout (little-endian):
 *   "INCPACK1"                          8 bytes; the last byte is the format version
 *   u32 H, then H bytes of JSON header  {key, numClasses, channels, height, width, length, classNames?}
 *   zero padding to a multiple of 4
 *   labels          int32 × length
 *   sourceIndices   int32 × length      record numbers in the source split
 *   pixels          uint8 × length·C·H·W (CHW per record, what the readers produce)
 *   sha256 of everything above          32 bytes: a torn or bit-rotted file is detected on open
 *
 * `key` names what the file holds (the cache key of its dataset spec); the opener checks it so a
 * file can never stand in for another selection.
 */
import { createHash } from "node:crypto";
import { type Dataset, newReadStats, packedDataset, validateLabels } from "./dataset.ts";
import { DataError } from "./errors.ts";

/** Changes whenever the layout does: it is part of every cache key. */
export const PACKED_FORMAT = "INCPACK1";
const MAGIC = new TextEncoder().encode(PACKED_FORMAT);
const DIGEST_BYTES = 32;
const MAX_HEADER_BYTES = 1 << 20;

interface PackedHeader {
  key: string;
  numClasses: number;
  channels: number;
  height: number;
  width: number;
  length: number;
  classNames?: string[];
}

const align4 = (n: number) => (n + 3) & ~3;

function layout(h: PackedHeader, headerBytes: number) {
  const labels = align4(MAGIC.length + 4 + headerBytes);
  const sourceIndices = labels + 4 * h.length;
  const pixels = sourceIndices + 4 * h.length;
  const imageBytes = h.channels * h.height * h.width;
  const digest = pixels + h.length * imageBytes;
  return { labels, sourceIndices, pixels, imageBytes, digest, size: digest + DIGEST_BYTES };
}

/** Encodes every record of `ds` (its images must be uint8, as every file-backed reader gives). */
export function encodePacked(ds: Dataset, key: string): Uint8Array {
  const header: PackedHeader = {
    key,
    numClasses: ds.numClasses,
    channels: ds.channels,
    height: ds.height,
    width: ds.width,
    length: ds.length,
    ...(ds.classNames ? { classNames: [...ds.classNames] } : {}),
  };
  const headerJson = new TextEncoder().encode(JSON.stringify(header));
  const at = layout(header, headerJson.length);
  const out = new Uint8Array(at.size);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(MAGIC.length, headerJson.length, true);
  out.set(headerJson, MAGIC.length + 4);
  for (let i = 0; i < ds.length; i++) {
    view.setInt32(at.labels + 4 * i, ds.labels[i]!, true);
    view.setInt32(at.sourceIndices + 4 * i, ds.sourceIndices ? ds.sourceIndices[i]! : i, true);
    const image = ds.getImage(i);
    if (!(image instanceof Uint8Array) || image.length !== at.imageBytes) {
      throw new DataError(
        `record ${i} is not a ${at.imageBytes}-byte uint8 image; only file-backed datasets can be packed`,
        { source: "encodePacked" },
      );
    }
    out.set(image, at.pixels + i * at.imageBytes);
  }
  out.set(createHash("sha256").update(out.subarray(0, at.digest)).digest(), at.digest);
  return out;
}

/**
 * Opens packed bytes as a Dataset (pixels are a view into `bytes`). Throws a DataError naming
 * `source` when the bytes are not a packed file, are truncated or corrupt, or hold another key.
 */
export function decodePacked(bytes: Uint8Array, source: string, expectKey?: string): Dataset {
  const corrupt = (why: string) =>
    new DataError(`not a valid packed dataset file: ${why}; delete it and it is rebuilt`, { source });
  if (bytes.length < MAGIC.length + 4 + DIGEST_BYTES || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw corrupt(`it does not start with "${PACKED_FORMAT}"`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = view.getUint32(MAGIC.length, true);
  if (headerBytes > MAX_HEADER_BYTES || MAGIC.length + 4 + headerBytes > bytes.length) {
    throw corrupt(`header length ${headerBytes} does not fit the file`);
  }
  let header: PackedHeader;
  try {
    header = JSON.parse(
      new TextDecoder().decode(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + headerBytes)),
    );
  } catch {
    throw corrupt("its header is not JSON");
  }
  const dims = [header.numClasses, header.channels, header.height, header.width, header.length];
  if (typeof header.key !== "string" || !dims.every((d) => Number.isInteger(d) && d >= 0)) {
    throw corrupt("its header lacks key or dimensions");
  }
  const at = layout(header, headerBytes);
  if (bytes.length !== at.size) {
    throw corrupt(`it has ${bytes.length} bytes, its header promises ${at.size} (truncated or padded)`);
  }
  const digest = createHash("sha256").update(bytes.subarray(0, at.digest)).digest();
  if (!digest.equals(bytes.subarray(at.digest))) throw corrupt("its sha256 does not match its content");
  if (expectKey !== undefined && header.key !== expectKey) {
    throw new DataError(
      `holds dataset selection ${header.key.slice(0, 12)}…, not the expected ${expectKey.slice(0, 12)}…; ` +
        `the dataset spec it was built from differs from this one`,
      { source },
    );
  }
  const labels = new Int32Array(header.length);
  const sourceIndices = new Int32Array(header.length);
  for (let i = 0; i < header.length; i++) {
    labels[i] = view.getInt32(at.labels + 4 * i, true);
    sourceIndices[i] = view.getInt32(at.sourceIndices + 4 * i, true);
  }
  validateLabels(labels, header.numClasses, source);
  return packedDataset({
    numClasses: header.numClasses,
    channels: header.channels,
    height: header.height,
    width: header.width,
    pixels: bytes.subarray(at.pixels, at.digest),
    labels,
    sourceIndices,
    stats: newReadStats(),
    source,
    classNames: header.classNames,
  });
}
