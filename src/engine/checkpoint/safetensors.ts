/**
 * safetensors read/write (the format of Hugging Face / timm checkpoints):
 *   8 bytes  little-endian u64 N = header length
 *   N bytes  UTF-8 JSON {"<name>": {"dtype", "shape", "data_offsets": [begin, end]}, ...,
 *            "__metadata__"?: {string: string}}, padded with spaces to a multiple of 8
 *   rest     the tensors' raw little-endian bytes; offsets are relative to the start of this part
 * Reading validates what the reference implementation validates — header bounds, JSON shape,
 * known dtypes, byte size = numel × dtype size, offsets in bounds, contiguous, non-overlapping,
 * no trailing bytes — and every error names the file and the tensor.
 * Writing orders tensors by dtype size (largest first), then name, as the reference writer
 * does, so every tensor's data is aligned for a zero-copy typed-array view.
 */
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { endianness } from "node:os";
import { dirname } from "node:path";

export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "U16"
  | "U32"
  | "U64"
  | "BOOL";

export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
};

export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Uint16Array
  | Int8Array
  | Uint8Array;

export interface TensorInput {
  data: TensorData;
  shape: readonly number[];
  /** Needed only where the array type is ambiguous: Uint16Array holding F16/BF16, Uint8Array holding BOOL. */
  dtype?: Dtype;
}

export interface Tensor {
  dtype: Dtype;
  shape: number[];
  /** The tensor's raw little-endian bytes (a view into the file buffer). */
  bytes: Uint8Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** Tensors in file order. */
  tensors: Map<string, Tensor>;
}

export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
}

const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit
const HEADER_ALIGN = 8;

function assertLittleEndianHost(): void {
  if (endianness() !== "LE") throw new SafetensorsError("safetensors support needs a little-endian host");
}

function inferDtype(data: TensorData): Dtype {
  if (data instanceof Float64Array) return "F64";
  if (data instanceof Float32Array) return "F32";
  if (data instanceof BigInt64Array) return "I64";
  if (data instanceof BigUint64Array) return "U64";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof Uint32Array) return "U32";
  if (data instanceof Int16Array) return "I16";
  if (data instanceof Uint16Array) return "U16";
  if (data instanceof Int8Array) return "I8";
  return "U8";
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// ---------------------------------------------------------------------------------------------
// Writing

interface PreparedTensor {
  name: string;
  data: TensorData;
}

/** Validates tensors and metadata and lays out the file: header bytes, tensors in file order. */
function planSafetensors(
  tensors: Readonly<Record<string, TensorInput>> | ReadonlyMap<string, TensorInput>,
  metadata: Readonly<Record<string, string>> | undefined,
): { header: Uint8Array; tensors: PreparedTensor[]; dataBytes: number } {
  assertLittleEndianHost();
  const entries: [string, TensorInput][] =
    tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors as Record<string, TensorInput>);
  const prepared = entries.map(([name, t]) => {
    if (name === "__metadata__")
      throw new SafetensorsError(`"__metadata__" is reserved and cannot name a tensor`);
    const dtype: Dtype = t.dtype ?? inferDtype(t.data);
    if (!(dtype in DTYPE_BYTES)) throw new SafetensorsError(`tensor "${name}": unknown dtype ${dtype}`);
    const elemBytes = DTYPE_BYTES[dtype];
    if (t.data.BYTES_PER_ELEMENT !== elemBytes) {
      throw new SafetensorsError(
        `tensor "${name}": dtype ${dtype} needs ${elemBytes}-byte elements but got ${t.data.constructor.name}`,
      );
    }
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 0)
        throw new SafetensorsError(`tensor "${name}": bad shape ${JSON.stringify(t.shape)}`);
    }
    if (numel(t.shape) !== t.data.length) {
      throw new SafetensorsError(
        `tensor "${name}": shape ${JSON.stringify(t.shape)} holds ${numel(t.shape)} elements but data has ${t.data.length}`,
      );
    }
    return { name, dtype, shape: [...t.shape], data: t.data, elemBytes };
  });
  prepared.sort((a, b) => b.elemBytes - a.elemBytes || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string")
        throw new SafetensorsError(`metadata "${k}" must be a string, got ${typeof v}`);
    }
    header["__metadata__"] = metadata;
  }
  let offset = 0;
  for (const t of prepared) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / HEADER_ALIGN) * HEADER_ALIGN;
  const head = new Uint8Array(8 + headerLen);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLen), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length); // space padding, as the reference writer
  return { header: head, tensors: prepared, dataBytes: offset };
}

const bytesOf = (d: TensorData) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** Serialises tensors (and optional string metadata) to a safetensors buffer. */
export function encodeSafetensors(
  tensors: Readonly<Record<string, TensorInput>> | ReadonlyMap<string, TensorInput>,
  metadata?: Readonly<Record<string, string>>,
): Uint8Array {
  const plan = planSafetensors(tensors, metadata);
  const out = new Uint8Array(plan.header.length + plan.dataBytes);
  out.set(plan.header, 0);
  let pos = plan.header.length;
  for (const t of plan.tensors) {
    out.set(bytesOf(t.data), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Writes all of `bytes` at the file position (writeSync may write less than asked). */
function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

/**
 * Writes a safetensors file atomically: to `<path>.tmp-<pid>`, fsync, rename, then fsync the
 * directory, so a crash mid-write never leaves a truncated checkpoint under the real name and a
 * crash just after the rename does not lose it. Tensors stream to the file one by one — no
 * whole-file buffer, so checkpoints larger than one JS buffer (2–4 GiB) can be written. The
 * bytes are identical to `encodeSafetensors`.
 */
export function writeSafetensors(
  path: string,
  tensors: Readonly<Record<string, TensorInput>> | ReadonlyMap<string, TensorInput>,
  metadata?: Readonly<Record<string, string>>,
): number {
  const plan = planSafetensors(tensors, metadata);
  atomicWrite(path, (fd) => {
    writeAll(fd, plan.header);
    for (const t of plan.tensors) writeAll(fd, bytesOf(t.data));
  });
  return plan.header.length + plan.dataBytes;
}

/**
 * Runs `write` on a fresh temporary file next to `path`, fsyncs it and renames it over `path`;
 * on any error the temporary file is removed and `path` is left as it was.
 */
export function atomicWrite(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = openSync(tmp, "w");
  } catch (err) {
    throw new SafetensorsError(
      `${path}: cannot create ${tmp} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); does the directory exist and is it writable?`,
    );
  }
  try {
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  // The rename is durable only once the directory entry is on disk.
  try {
    const dirFd = openSync(dirname(path), "r");
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some filesystems refuse fsync on directories; the data itself is already synced.
  }
}

// ---------------------------------------------------------------------------------------------
// Reading

interface HeaderEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

interface ParsedHeader {
  metadata: Record<string, string>;
  entries: HeaderEntry[];
  /** Byte offset of the data section in the file. */
  dataStart: number;
}

/** Parses and validates the header; `dataBytes` is the length of the data section. */
function parseHeader(
  headerBytes: Uint8Array,
  headerLen: number,
  dataBytes: number,
  where: string,
): ParsedHeader {
  const fail = (msg: string) => new SafetensorsError(`${where}: ${msg}`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw fail(
      `header is not valid UTF-8 JSON (${(err as Error).message}); the file is corrupt or not safetensors`,
    );
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw fail("header must be a JSON object of tensor entries");
  }
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw))
        throw fail(`"__metadata__" must be an object of strings`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== "string") throw fail(`"__metadata__.${k}" must be a string, got ${typeof v}`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== "object" || e === null) throw fail(`tensor "${name}": entry must be an object`);
    if (typeof e.dtype !== "string" || !(e.dtype in DTYPE_BYTES)) {
      throw fail(
        `tensor "${name}": unknown dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(", ")})`,
      );
    }
    const dtype = e.dtype as Dtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw fail(
        `tensor "${name}": shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`,
      );
    }
    const off = e.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[0] > off[1]
    ) {
      throw fail(
        `tensor "${name}": data_offsets must be [begin, end] with 0 ≤ begin ≤ end, got ${JSON.stringify(off)}`,
      );
    }
    const [begin, end] = off as [number, number];
    const expected = numel(e.shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw fail(
        `tensor "${name}": data_offsets span ${end - begin} bytes but ${dtype} ${JSON.stringify(e.shape)} needs ${expected}`,
      );
    }
    if (end > dataBytes) {
      throw fail(
        `tensor "${name}": data_offsets [${begin}, ${end}] reach past the data section (${dataBytes} bytes); the file is truncated`,
      );
    }
    entries.push({ name, dtype, shape: e.shape as number[], begin, end });
  }
  // Contiguous, non-overlapping, covering the data section exactly (reference validation).
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin < pos) {
      const prev = sorted.find((p) => p !== e && p.begin < e.end && e.begin < p.end);
      throw fail(`tensor "${e.name}": bytes [${e.begin}, ${e.end}) overlap tensor "${prev?.name ?? "?"}"`);
    }
    if (e.begin > pos)
      throw fail(`gap of ${e.begin - pos} unclaimed bytes before tensor "${e.name}" (offset ${pos})`);
    pos = e.end;
  }
  if (pos !== dataBytes) {
    throw fail(
      `${dataBytes - pos} bytes after the last tensor are not described by the header; the file is corrupt`,
    );
  }
  return { metadata, entries, dataStart: 8 + headerLen };
}

function readHeaderLength(first8: Uint8Array, fileSize: number, where: string): number {
  if (fileSize < 8)
    throw new SafetensorsError(
      `${where}: ${fileSize} bytes is too short for a safetensors file (header length needs 8)`,
    );
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) {
    throw new SafetensorsError(
      `${where}: header length ${n} exceeds the 100 MB limit; not a safetensors file`,
    );
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw new SafetensorsError(
      `${where}: header length ${len} reaches past the end of the file (${fileSize} bytes); the file is truncated`,
    );
  }
  return len;
}

/** Parses a safetensors buffer; tensor bytes are views into `buf` (no copy). */
export function decodeSafetensors(buf: Uint8Array, where = "safetensors buffer"): SafetensorsFile {
  assertLittleEndianHost();
  const headerLen = readHeaderLength(buf.subarray(0, 8), buf.length, where);
  const parsed = parseHeader(buf.subarray(8, 8 + headerLen), headerLen, buf.length - 8 - headerLen, where);
  const tensors = new Map<string, Tensor>();
  for (const e of parsed.entries) {
    tensors.set(e.name, {
      dtype: e.dtype,
      shape: e.shape,
      bytes: buf.subarray(parsed.dataStart + e.begin, parsed.dataStart + e.end),
    });
  }
  return { metadata: parsed.metadata, tensors };
}

export function readSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new SafetensorsError(
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

/**
 * Opens a file and reads only its header; `read(name)` then fetches one tensor by offset. For
 * large pre-trained checkpoints where only some tensors (e.g. K of the blocks) are needed.
 */
export function openSafetensors(path: string): {
  metadata: Record<string, string>;
  names: string[];
  info(name: string): { dtype: Dtype; shape: number[] };
  read(name: string): Tensor;
  close(): void;
} {
  assertLittleEndianHost();
  const fd = openSync(path, "r");
  try {
    const size = statSync(path).size;
    const readAt = (pos: number, len: number) => {
      const out = new Uint8Array(len);
      let done = 0;
      while (done < len) {
        const n = readSync(fd, out, done, len - done, pos + done);
        if (n === 0)
          throw new SafetensorsError(
            `${path}: unexpected end of file at ${pos + done}; the file is truncated`,
          );
        done += n;
      }
      return out;
    };
    const headerLen = readHeaderLength(readAt(0, Math.min(8, size)), size, path);
    const parsed = parseHeader(readAt(8, headerLen), headerLen, size - 8 - headerLen, path);
    const byName = new Map(parsed.entries.map((e) => [e.name, e]));
    const get = (name: string) => {
      const e = byName.get(name);
      if (!e) throw new SafetensorsError(`${path}: no tensor "${name}" (it has ${byName.size} tensors)`);
      return e;
    };
    return {
      metadata: parsed.metadata,
      names: parsed.entries.map((e) => e.name),
      info: (name) => {
        const e = get(name);
        return { dtype: e.dtype, shape: e.shape };
      },
      read: (name) => {
        const e = get(name);
        return { dtype: e.dtype, shape: e.shape, bytes: readAt(parsed.dataStart + e.begin, e.end - e.begin) };
      },
      close: () => closeSync(fd),
    };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Typed views and conversion

/** Copies bytes into a fresh, aligned buffer when the view is misaligned for `elemBytes`. */
function aligned(bytes: Uint8Array, elemBytes: number): Uint8Array {
  return bytes.byteOffset % elemBytes === 0 ? bytes : Uint8Array.from(bytes);
}

/** The tensor's data as its natural typed array (F16/BF16 come back as their raw Uint16Array). */
export function tensorData(t: Tensor): TensorData {
  const size = DTYPE_BYTES[t.dtype];
  const b = aligned(t.bytes, size);
  const n = b.byteLength / size;
  switch (t.dtype) {
    case "F64":
      return new Float64Array(b.buffer, b.byteOffset, n);
    case "F32":
      return new Float32Array(b.buffer, b.byteOffset, n);
    case "I64":
      return new BigInt64Array(b.buffer, b.byteOffset, n);
    case "U64":
      return new BigUint64Array(b.buffer, b.byteOffset, n);
    case "I32":
      return new Int32Array(b.buffer, b.byteOffset, n);
    case "U32":
      return new Uint32Array(b.buffer, b.byteOffset, n);
    case "I16":
      return new Int16Array(b.buffer, b.byteOffset, n);
    case "F16":
    case "BF16":
    case "U16":
      return new Uint16Array(b.buffer, b.byteOffset, n);
    case "I8":
      return new Int8Array(b.buffer, b.byteOffset, n);
    case "U8":
    case "BOOL":
      return b;
  }
}

/** IEEE half → float. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Any floating or integer tensor as Float32Array (F16/BF16 converted exactly; I64 must fit 2^53). */
export function toFloat32(t: Tensor): Float32Array {
  const data = tensorData(t);
  if (t.dtype === "F32") return Float32Array.from(data as Float32Array);
  const n = data.length;
  const out = new Float32Array(n);
  if (t.dtype === "F16") {
    const u = data as Uint16Array;
    for (let i = 0; i < n; i++) out[i] = halfToFloat(u[i]!);
  } else if (t.dtype === "BF16") {
    const u = data as Uint16Array;
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) bits[i] = u[i]! << 16;
  } else if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) out[i] = Number(data[i]!);
  } else {
    for (let i = 0; i < n; i++) out[i] = (data as Exclude<TensorData, BigInt64Array | BigUint64Array>)[i]!;
  }
  return out;
}
