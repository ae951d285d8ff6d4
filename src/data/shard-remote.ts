/**
 * The HTTP side of shard distribution, both ends of one contract: the API server serves a
 * dataset's packed shard at `GET /datasets/<id>/shards/<count>/<index>?seed=S&split=train`
 * (src/api/shard-route.ts), and a worker that cannot read the source downloads it here and
 * verifies its length and sha256 before anything is cached.
 */
import { createHash } from "node:crypto";
import { DataError } from "./errors.ts";
import type { ParsedDatasetSpec } from "./registry.ts";

/** The route, in Express syntax. */
export const SHARD_ROUTE = "/datasets/:dataset/shards/:count/:index";
/** sha256 (hex) of the response body. */
export const SHARD_SHA256_HEADER = "x-shard-sha256";
/** Bytes the server read from the dataset's source to build this response (0 when it had it cached). */
export const SHARD_SOURCE_BYTES_HEADER = "x-shard-source-bytes-read";

/** Where a worker downloads shards it cannot read itself: the API server of the platform. */
export interface RemoteDataSource {
  /** The server's root URL, e.g. http://api:4000 (a trailing /graphql is ignored). */
  baseUrl: string;
  /** The registered dataset: its global ID or database uuid. */
  datasetId: string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
}

/** The shard a spec selects; a spec without `shard` is shard 0 of 1 (the whole split). */
export function shardOf(spec: ParsedDatasetSpec): { count: number; index: number; seed: number } {
  return spec.shard ?? { count: 1, index: 0, seed: 0 };
}

export function shardUrl(remote: RemoteDataSource, spec: ParsedDatasetSpec): URL {
  const { count, index, seed } = shardOf(spec);
  const root = remote.baseUrl.replace(/\/graphql\/?$/, "").replace(/\/+$/, "");
  const url = new URL(`${root}/datasets/${encodeURIComponent(remote.datasetId)}/shards/${count}/${index}`);
  url.searchParams.set("seed", String(seed));
  url.searchParams.set("split", spec.split);
  return url;
}

/**
 * Downloads the packed shard `spec` selects and checks it arrived whole. A refusal (4xx: no such
 * dataset, bad shard) is a DataError, which a retry would repeat; a server or network failure,
 * or a body that does not match its length or sha256, is a plain Error, worth retrying.
 */
export async function fetchShard(remote: RemoteDataSource, spec: ParsedDatasetSpec): Promise<Uint8Array> {
  const url = shardUrl(remote, spec);
  let response: Response;
  try {
    response = await fetch(url, remote.token ? { headers: { authorization: `Bearer ${remote.token}` } } : {});
  } catch (error) {
    throw new Error(`cannot reach the data server at ${url.origin}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    let reason = text.slice(0, 500);
    try {
      reason = (JSON.parse(text) as { error?: string }).error ?? reason;
    } catch {}
    const message = `the data server answered ${response.status} for ${url.pathname}${url.search}: ${reason}`;
    if (response.status >= 400 && response.status < 500) throw new DataError(message, { source: url.origin });
    throw new Error(message);
  }
  const body = new Uint8Array(await response.arrayBuffer());
  const length = Number(response.headers.get("content-length"));
  const expected = response.headers.get(SHARD_SHA256_HEADER);
  const actual = createHash("sha256").update(body).digest("hex");
  if (!expected || (Number.isFinite(length) && length !== body.length) || actual !== expected) {
    throw new Error(
      `shard download from ${url.origin} is damaged: ${body.length} bytes hashing to ${actual}, ` +
        `the server announced ${length} bytes and sha256 ${expected ?? "(none)"}`,
    );
  }
  return body;
}
