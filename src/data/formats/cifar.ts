/**
 * CIFAR-10 / CIFAR-100 "binary version" files. Every record is the label byte(s) followed by a
 * 32×32×3 image stored channel-major (1024 R, 1024 G, 1024 B — already CHW):
 *   CIFAR-10:  <label> <3072 pixels>                 (data_batch_1..5.bin, test_batch.bin)
 *   CIFAR-100: <coarse label> <fine label> <3072 px> (train.bin, test.bin)
 * Records have a fixed size, so any record is one positioned read away: a shard costs its bytes.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { checkIndices, type Dataset, newReadStats, packedDataset, type ReadStats } from "../dataset.ts";
import { DataError } from "../errors.ts";
import { isGzipFile, planRecordReads, RandomAccessFile } from "../io.ts";

export type CifarVariant = "cifar10" | "cifar100";
export type CifarLabelMode = "fine" | "coarse";

const IMAGE_BYTES = 3 * 32 * 32;

interface Layout {
  labelBytes: number;
  recordBytes: number;
  labelOffset: number; // which label byte is used
  numClasses: number;
}

function layout(variant: CifarVariant, labelMode: CifarLabelMode): Layout {
  if (variant === "cifar10") {
    if (labelMode === "coarse") {
      throw new DataError(`labelMode "coarse" exists only for cifar100; use "fine" (or omit it) for cifar10`);
    }
    return { labelBytes: 1, recordBytes: 1 + IMAGE_BYTES, labelOffset: 0, numClasses: 10 };
  }
  return {
    labelBytes: 2,
    recordBytes: 2 + IMAGE_BYTES,
    labelOffset: labelMode === "coarse" ? 0 : 1,
    numClasses: labelMode === "coarse" ? 20 : 100,
  };
}

/** The standard file names of a split inside an extracted CIFAR directory. */
export function cifarSplitFiles(dir: string, variant: CifarVariant, split: "train" | "test"): string[] {
  const names =
    variant === "cifar10"
      ? split === "train"
        ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)
        : ["test_batch.bin"]
      : [`${split}.bin`];
  const files = names.map((n) => join(dir, n));
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new DataError(
      `missing ${missing.map((m) => JSON.stringify(m)).join(", ")}; point "path" at the extracted ` +
        `${variant === "cifar10" ? "cifar-10-batches-bin" : "cifar-100-binary"} directory ` +
        `(tar xzf the downloaded archive first)`,
      { source: dir },
    );
  }
  return files;
}

export interface CifarOptions {
  variant: CifarVariant;
  /** The .bin files of the split, in order; their records are numbered consecutively. */
  files: readonly string[];
  labelMode?: CifarLabelMode;
  indices?: ArrayLike<number>;
  classNames?: readonly string[];
}

interface FileInfo {
  path: string;
  records: number;
  first: number; // global number of its first record
}

function inspectFiles(
  files: readonly string[],
  lay: Layout,
  variant: CifarVariant,
  stats: ReadStats,
): FileInfo[] {
  if (files.length === 0) throw new DataError(`${variant}: no files given`);
  const infos: FileInfo[] = [];
  let first = 0;
  for (const path of files) {
    if (!existsSync(path))
      throw new DataError("the file does not exist; check the dataset path", { source: path });
    if (isGzipFile(path, stats)) {
      throw new DataError(
        "is gzip-compressed; the reader needs the extracted .bin files (tar xzf cifar-*-binary.tar.gz)",
        { source: path },
      );
    }
    const size = statSync(path).size;
    if (size === 0 || size % lay.recordBytes !== 0) {
      const other = variant === "cifar10" ? "cifar100" : "cifar10";
      throw new DataError(
        `size ${size} bytes is not a whole number of ${variant} records (${lay.recordBytes} bytes each: ` +
          `${lay.labelBytes} label byte(s) + 3072 pixels); the file is truncated, not a CIFAR binary ` +
          `batch, or a ${other} file (try format "${other}")`,
        { source: path },
      );
    }
    infos.push({ path, records: size / lay.recordBytes, first });
    first += size / lay.recordBytes;
  }
  return infos;
}

/** Reads just the label bytes of every record (one small positioned read each). */
function readLabels(infos: FileInfo[], lay: Layout, variant: CifarVariant, stats: ReadStats): Int32Array {
  const total = infos.reduce((s, f) => s + f.records, 0);
  const labels = new Int32Array(total);
  const buf = new Uint8Array(lay.labelBytes);
  for (const info of infos) {
    const file = new RandomAccessFile(info.path, stats);
    try {
      for (let r = 0; r < info.records; r++) {
        file.read(r * lay.recordBytes, lay.labelBytes, buf);
        const coarse = buf[0]!;
        if (variant === "cifar100" && coarse >= 20) {
          throw new DataError(
            `record ${r} has coarse label ${coarse} (must be < 20); this is not a CIFAR-100 file`,
            { source: info.path },
          );
        }
        const y = buf[lay.labelOffset]!;
        if (y >= lay.numClasses) {
          throw new DataError(
            `record ${r} has label ${y}, outside [0, ${lay.numClasses}); this is not a ${variant} file` +
              (variant === "cifar10" ? " (a CIFAR-100 file? use format cifar100)" : ""),
            { source: info.path },
          );
        }
        labels[info.first + r] = y;
      }
    } finally {
      file.close();
    }
  }
  return labels;
}

/** Labels of every record of the files, without reading any pixels (for sharding). */
export function readCifarLabels(
  variant: CifarVariant,
  files: readonly string[],
  labelMode: CifarLabelMode = "fine",
  stats: ReadStats = newReadStats(),
): Int32Array {
  const lay = layout(variant, labelMode);
  return readLabels(inspectFiles(files, lay, variant, stats), lay, variant, stats);
}

export function openCifarDataset(opts: CifarOptions): Dataset {
  const stats = newReadStats();
  const lay = layout(opts.variant, opts.labelMode ?? "fine");
  const infos = inspectFiles(opts.files, lay, opts.variant, stats);
  const total = infos.reduce((s, f) => s + f.records, 0);
  const source = opts.files.length === 1 ? opts.files[0]! : `${opts.variant} (${opts.files.length} files)`;
  const indices = opts.indices
    ? checkIndices(opts.indices, total, source)
    : Int32Array.from({ length: total }, (_, i) => i);

  // One pass in file order over the wanted records; each record yields its label and pixels.
  const pixels = new Uint8Array(indices.length * IMAGE_BYTES);
  const labels = new Int32Array(indices.length);
  const { sorted, slotsFor } = planRecordReads(indices);
  let k = 0;
  for (const info of infos) {
    const file = new RandomAccessFile(info.path, stats);
    try {
      while (k < sorted.length && sorted[k]! < info.first + info.records) {
        // Coalesce consecutive records into one read of at most ~8 MiB.
        let end = k + 1;
        while (
          end < sorted.length &&
          end - k < 2700 &&
          sorted[end] === sorted[end - 1]! + 1 &&
          sorted[end]! < info.first + info.records
        ) {
          end++;
        }
        const local = sorted[k]! - info.first;
        const run = file.read(local * lay.recordBytes, (end - k) * lay.recordBytes);
        for (let j = k; j < end; j++) {
          const rec = run.subarray((j - k) * lay.recordBytes, (j - k + 1) * lay.recordBytes);
          const y = rec[lay.labelOffset]!;
          if (y >= lay.numClasses || (opts.variant === "cifar100" && rec[0]! >= 20)) {
            throw new DataError(
              `record ${sorted[j]! - info.first} has label ${y} outside [0, ${lay.numClasses}); not a ${opts.variant} file`,
              { source: info.path },
            );
          }
          for (const slot of slotsFor(sorted[j]!)) {
            labels[slot] = y;
            pixels.set(rec.subarray(lay.labelBytes), slot * IMAGE_BYTES);
          }
        }
        k = end;
      }
    } finally {
      file.close();
    }
  }

  const classNames =
    opts.classNames ?? readCifarClassNames(opts.files[0]!, opts.variant, opts.labelMode ?? "fine");
  return packedDataset({
    numClasses: lay.numClasses,
    channels: 3,
    height: 32,
    width: 32,
    pixels,
    labels,
    sourceIndices: indices,
    stats,
    source,
    classNames,
  });
}

/** Class names from the meta text file next to the batches, when present and plausible. */
function readCifarClassNames(
  firstFile: string,
  variant: CifarVariant,
  labelMode: CifarLabelMode,
): readonly string[] | undefined {
  const dir = join(firstFile, "..");
  const name =
    variant === "cifar10"
      ? "batches.meta.txt"
      : labelMode === "coarse"
        ? "coarse_label_names.txt"
        : "fine_label_names.txt";
  const path = join(dir, name);
  if (!existsSync(path)) return undefined;
  const names = readFileSync(path, "utf8")
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const expected = variant === "cifar10" ? 10 : labelMode === "coarse" ? 20 : 100;
  return names.length === expected ? names : undefined;
}

/** Encodes CIFAR binary records (tests, exporters). `coarse` is required for cifar100. */
export function encodeCifar(
  variant: CifarVariant,
  records: { label: number; coarse?: number; pixels: Uint8Array }[],
): Uint8Array {
  const lay = layout(variant, "fine");
  const out = new Uint8Array(records.length * lay.recordBytes);
  records.forEach((r, i) => {
    if (r.pixels.length !== IMAGE_BYTES) throw new Error(`encodeCifar: record ${i} needs 3072 pixels`);
    const base = i * lay.recordBytes;
    if (variant === "cifar100") {
      out[base] = r.coarse ?? 0;
      out[base + 1] = r.label;
    } else {
      out[base] = r.label;
    }
    out.set(r.pixels, base + lay.labelBytes);
  });
  return out;
}
