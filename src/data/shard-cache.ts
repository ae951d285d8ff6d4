/**
 * Training data through a per-machine cache of packed shards (decentralised modular training:
 * worker i fetches and keeps only shard i). `openTrainingData(spec, { dir, remote })`:
 *
 *   - cache hit (an intact file under the spec's key): open it; the source is not touched;
 *   - miss, source on this machine: read only the selection's records, cache them, use them;
 *   - miss, source not here, `remote` given: download the packed shard from the API server,
 *     verify it, cache it, use it.
 *
 * The key is the sha256 of the canonical (validated, defaults filled, keys sorted) dataset spec
 * with its shard selection, so another seed, count, split or hold-out is another file, while
 * the same selection asked by any job on the machine is the same file. A file that fails its
 * checksum is deleted and rebuilt. The key says nothing of the source files' contents: replace
 * a dataset's files in place and you must clear the cache (DATA_DIR/shards) yourself.
 *
 * Gzip IDX cannot be seeked, so building a shard from it decompresses the whole .gz; the cache
 * makes that a one-time cost per machine, and a worker fetching from the server reads nothing.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Dataset } from "./dataset.ts";
import { DataError } from "./errors.ts";
import { decodePacked, encodePacked, PACKED_FORMAT } from "./packed.ts";
import { openDataset, type ParsedDatasetSpec, parseDatasetSpec } from "./registry.ts";
import { fetchShard, type RemoteDataSource, shardOf } from "./shard-remote.ts";

export interface DataCacheOptions {
  /** Directory of packed shards, shared by every job on the machine (a worker uses DATA_DIR/shards). */
  dir: string;
  /** Where to download a shard whose source is not on this machine. */
  remote?: RemoteDataSource;
}

/** How the training data was obtained: cached copy, built from the source here, downloaded, or read directly (no cache). */
export type DataCacheOutcome = "hit" | "filled-local" | "fetched" | "off";

/** A type, not an interface, so it can be stored as JSON (event payloads). */
export type DataStats = {
  cache: DataCacheOutcome;
  /** Bytes read from the dataset's source files for this job (0 on a hit or a download). */
  bytesRead: number;
  /** Bytes downloaded from the data server. */
  bytesFetched: number;
  /** Size of the cached packed file (0 when not cached). */
  cachedBytes: number;
  /** Records selected (the shard's size). */
  records: number;
  /** True when a damaged cache file was found and replaced. */
  replacedCorrupt?: boolean;
  /** The cached file. */
  path?: string;
};

export interface TrainingData {
  /** Its `stats.bytesRead` counts the source bytes this job read (what `DataStats.bytesRead` reports). */
  dataset: Dataset;
  data: DataStats;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The cache key of the records a spec selects (a spec without `shard` is shard 0 of 1: the same records). */
export function shardCacheKey(spec: unknown): string {
  const parsed = parseDatasetSpec(spec);
  const canonical = canonicalJson({ ...parsed, shard: shardOf(parsed) });
  return createHash("sha256").update(`${PACKED_FORMAT}\n${canonical}`).digest("hex");
}

/** Synthetic data is generated, not read: there is nothing to cache. */
const isCacheable = (spec: ParsedDatasetSpec) => spec.format !== "synthetic";

/** Whether the spec's source files exist on this machine (no bytes are read). */
function sourceIsHere(spec: ParsedDatasetSpec): boolean {
  if (spec.format === "synthetic") return true;
  if (spec.format === "idx" && !spec.path) return existsSync(spec.images!) && existsSync(spec.labels!);
  return existsSync(spec.path!);
}

interface Filled {
  bytes: Uint8Array;
  bytesRead: number;
  bytesFetched: number;
  cache: "filled-local" | "fetched";
}

/** Reads only the selected records from the source and packs them. */
export async function packFromSource(spec: ParsedDatasetSpec, key: string): Promise<Filled> {
  const ds = await openDataset(spec);
  const bytes = encodePacked(ds, key); // lazy readers (image folders) read here, so count after
  return { bytes, bytesRead: ds.stats.bytesRead, bytesFetched: 0, cache: "filled-local" };
}

function writeAtomically(path: string, bytes: Uint8Array): void {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(temp, bytes);
  renameSync(temp, path); // readers see the old file or the whole new one, never a torn one
}

export interface PackedShard {
  bytes: Uint8Array;
  dataset: Dataset;
  data: DataStats & { path: string };
}

/** Builds of the same file in this process share one promise (several jobs, several requests). */
const inFlight = new Map<string, Promise<PackedShard>>();

/**
 * The packed file of `spec` in `dir`: the cached one when intact, else produced by `fill` and
 * cached. A damaged cached file is deleted and produced again.
 */
export function cachedPacked(
  spec: ParsedDatasetSpec,
  dir: string,
  fill: (key: string) => Promise<Filled>,
): Promise<PackedShard> {
  const key = shardCacheKey(spec);
  const path = join(dir, `${key}.pack`);
  const pending = inFlight.get(path);
  if (pending) return pending;
  const work = (async (): Promise<PackedShard> => {
    let replacedCorrupt = false;
    if (existsSync(path)) {
      const bytes: Uint8Array = readFileSync(path);
      try {
        const dataset = decodePacked(bytes, path, key);
        const data = { cache: "hit", bytesRead: 0, bytesFetched: 0, cachedBytes: bytes.length } as const;
        return { bytes, dataset, data: { ...data, records: dataset.length, path } };
      } catch (error) {
        if (!(error instanceof DataError)) throw error;
        rmSync(path, { force: true });
        replacedCorrupt = true;
      }
    }
    const filled = await fill(key);
    const dataset = decodePacked(filled.bytes, path, key); // a download for another spec stops here
    mkdirSync(dir, { recursive: true });
    writeAtomically(path, filled.bytes);
    dataset.stats.bytesRead = filled.bytesRead;
    const { cache, bytesRead, bytesFetched } = filled;
    return {
      bytes: filled.bytes,
      dataset,
      data: {
        cache,
        bytesRead,
        bytesFetched,
        cachedBytes: filled.bytes.length,
        records: dataset.length,
        ...(replacedCorrupt ? { replacedCorrupt } : {}),
        path,
      },
    };
  })().finally(() => inFlight.delete(path));
  inFlight.set(path, work);
  return work;
}

/**
 * The training dataset a job spec names, through the machine's shard cache when `cache` is
 * given (see the file comment); without it, read directly from the source as `openDataset` does.
 */
export async function openTrainingData(spec: unknown, cache?: DataCacheOptions): Promise<TrainingData> {
  const parsed = parseDatasetSpec(spec);
  if (!cache || !isCacheable(parsed)) {
    const dataset = await openDataset(parsed);
    const data = {
      cache: "off",
      bytesRead: dataset.stats.bytesRead,
      bytesFetched: 0,
      cachedBytes: 0,
    } as const;
    return { dataset, data: { ...data, records: dataset.length } };
  }
  const remote = cache.remote;
  const { dataset, data } = await cachedPacked(parsed, cache.dir, async (key) => {
    if (sourceIsHere(parsed) || !remote) return packFromSource(parsed, key);
    const bytes = await fetchShard(remote, parsed);
    return { bytes, bytesRead: 0, bytesFetched: bytes.length, cache: "fetched" };
  });
  return { dataset, data };
}
