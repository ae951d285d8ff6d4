import { DataError } from "./errors.ts";

/**
 * A labelled image classification dataset with random access.
 *
 * Images are CHW. A `Uint8Array` holds 0..255 pixel values (what every file format stores); a
 * `Float32Array` holds values already on the 0..1 scale. Augmentation and batching accept both.
 * The returned array may be a view into the dataset's own storage: treat it as read-only.
 */
export interface Dataset {
  readonly numClasses: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly length: number;
  readonly classNames?: readonly string[];
  /** Label of every record, in record order: what sharding and stratified splits work on. */
  readonly labels: Int32Array;
  /**
   * Where record i came from in the underlying files (the record number there). When a reader
   * loaded only a shard, record i of this dataset is record `sourceIndices[i]` of the files.
   */
  readonly sourceIndices?: Int32Array;
  /** Bytes this dataset has read from disk so far (compressed bytes for gzip files). */
  readonly stats: ReadStats;
  getImage(i: number): Uint8Array | Float32Array;
  getLabel(i: number): number;
}

export interface ReadStats {
  bytesRead: number;
  filesOpened: number;
}

export function newReadStats(): ReadStats {
  return { bytesRead: 0, filesOpened: 0 };
}

/**
 * A dataset whose selected records are already decoded into one packed CHW buffer (IDX, CIFAR):
 * record k's image is pixels[k·C·H·W, (k+1)·C·H·W).
 */
export function packedDataset(o: {
  numClasses: number;
  channels: number;
  height: number;
  width: number;
  pixels: Uint8Array;
  labels: Int32Array;
  /** Record numbers in the source files, one per loaded record. */
  sourceIndices: Int32Array;
  stats: ReadStats;
  /** Named in index errors. */
  source: string;
  classNames?: readonly string[] | undefined;
}): Dataset {
  const length = o.sourceIndices.length;
  const imageSize = o.channels * o.height * o.width;
  const ds: Dataset = {
    numClasses: o.numClasses,
    channels: o.channels,
    height: o.height,
    width: o.width,
    length,
    labels: o.labels,
    sourceIndices: o.sourceIndices,
    stats: o.stats,
    getImage(i) {
      checkIndex(i, length, o.source);
      return o.pixels.subarray(i * imageSize, (i + 1) * imageSize);
    },
    getLabel(i) {
      checkIndex(i, length, o.source);
      return o.labels[i]!;
    },
  };
  return o.classNames ? { ...ds, classNames: o.classNames } : ds;
}

export function checkIndex(i: number, length: number, what: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= length) {
    throw new RangeError(`${what}: record index ${i} is out of range [0, ${length})`);
  }
}

/**
 * Validates a caller-supplied list of record indices (a shard) against the record count and
 * returns it as an Int32Array. Duplicates are allowed (oversampling is a legitimate use).
 */
export function checkIndices(indices: ArrayLike<number>, count: number, source: string): Int32Array {
  const out = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    if (!Number.isInteger(i) || i < 0 || i >= count) {
      throw new DataError(
        `indices[${k}] = ${i} is out of range: the files hold ${count} records (valid indices 0..${count - 1})`,
        { source },
      );
    }
    out[k] = i;
  }
  return out;
}

/** A view of `parent` restricted to `indices` (no copying of image data). */
export function subsetDataset(parent: Dataset, indices: ArrayLike<number>): Dataset {
  const idx = checkIndices(indices, parent.length, "subsetDataset");
  const labels = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) labels[k] = parent.labels[idx[k]!]!;
  const parentSource = parent.sourceIndices;
  const sourceIndices = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) sourceIndices[k] = parentSource ? parentSource[idx[k]!]! : idx[k]!;
  const ds: Dataset = {
    numClasses: parent.numClasses,
    channels: parent.channels,
    height: parent.height,
    width: parent.width,
    length: idx.length,
    labels,
    sourceIndices,
    stats: parent.stats,
    getImage(i) {
      checkIndex(i, idx.length, "subsetDataset");
      return parent.getImage(idx[i]!);
    },
    getLabel(i) {
      checkIndex(i, idx.length, "subsetDataset");
      return labels[i]!;
    },
  };
  return parent.classNames ? { ...ds, classNames: parent.classNames } : ds;
}

/** Checks labels are integers in [0, numClasses); readers call it so bad label files fail at open. */
export function validateLabels(labels: Int32Array, numClasses: number, source: string): void {
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (y < 0 || y >= numClasses) {
      throw new DataError(
        `label of record ${i} is ${y}, outside [0, ${numClasses}); the labels file does not belong to ` +
          `this dataset or numClasses is wrong`,
        { source },
      );
    }
  }
}
