/**
 * `GET /datasets/<dataset global ID or uuid>/shards/<count>/<index>?seed=S&split=train`: the
 * packed file (src/data/packed.ts) of one class-balanced shard of a registered dataset, for
 * workers that cannot read the dataset's files themselves. The server reads only that shard's
 * records, keeps the packed file in its own shard cache (DATA_DIR/shards) and answers with the
 * body's sha256 in `x-shard-sha256`, which the worker checks before caching it.
 *
 * Access: `authorize` runs before anything else (an Express handler that calls `next()` to
 * allow or answers 401/403 itself); without it the route is as open as `/artifacts/<sha256>`.
 */
import { createHash } from "node:crypto";
import { type Request, type RequestHandler, type Response, Router } from "express";
import { DataError } from "../data/errors.ts";
import { cachedPacked, packFromSource } from "../data/shard-cache.ts";
import { SHARD_ROUTE, SHARD_SHA256_HEADER, SHARD_SOURCE_BYTES_HEADER } from "../data/shard-remote.ts";
import type { Db } from "../platform/db/client.ts";
import { datasetSpecOf } from "../platform/db/json-columns.ts";
import type { Logger } from "../platform/logger.ts";
import { idFromGlobalIdOrUuid } from "./global-id.ts";

export interface ShardRouteOptions {
  db: Db;
  logger: Logger;
  /** The server's shard cache (DATA_DIR/shards). */
  cacheDir: string;
  authorize?: RequestHandler;
}

class BadRequest extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function wholeNumber(value: unknown, name: string, max: number): number {
  const text = String(value);
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > max) {
    throw new BadRequest(400, `${name}: must be a whole number between 0 and ${max}, got "${text}"`);
  }
  return n;
}

/** The dataset spec of the requested shard, from the URL and the registered dataset. */
async function requestedSpec(req: Request, db: Db) {
  const param = String(req.params.dataset);
  const id = idFromGlobalIdOrUuid("Dataset", param);
  if (!id) throw new BadRequest(400, `dataset: "${param}" is neither a Dataset ID nor a dataset uuid`);
  const split = String(req.query.split ?? "train");
  if (split !== "train" && split !== "test") {
    throw new BadRequest(400, `split: must be "train" or "test", got "${split}"`);
  }
  const dataset = await db.dataset.findUnique({ where: { id } });
  if (!dataset) throw new BadRequest(404, `no dataset ${param}; registerDataset first`);
  if (dataset.format === "synthetic") {
    throw new BadRequest(400, `dataset "${dataset.name}" is synthetic: workers generate it from its spec`);
  }
  const records = split === "train" ? dataset.trainSize : dataset.testSize;
  if (records === 0) throw new BadRequest(404, `dataset "${dataset.name}" has no ${split} split`);
  const count = wholeNumber(req.params.count, "count", records);
  if (count < 1) throw new BadRequest(400, `count: must be at least 1, got 0`);
  const index = wholeNumber(req.params.index, "index", count - 1);
  const seed = wholeNumber(req.query.seed ?? "0", "seed", 0xffffffff);
  try {
    return {
      name: dataset.name,
      spec: datasetSpecOf(dataset, { split, shard: { count, index, seed } }),
    };
  } catch (error) {
    if (error instanceof DataError) throw new BadRequest(400, error.message);
    throw error;
  }
}

export function shardRoute(o: ShardRouteOptions): Router {
  const router = Router();
  const allow: RequestHandler = (_req, _res, next) => next();
  router.get(SHARD_ROUTE, o.authorize ?? allow, async (req: Request, res: Response) => {
    try {
      const { name, spec } = await requestedSpec(req, o.db);
      const shard = await cachedPacked(spec, o.cacheDir, (key) => packFromSource(spec, key));
      const body = Buffer.from(shard.bytes.buffer, shard.bytes.byteOffset, shard.bytes.byteLength);
      o.logger.info({ dataset: name, shard: spec.shard, ...shard.data }, "serving a dataset shard");
      res.set({
        "content-type": "application/octet-stream",
        [SHARD_SHA256_HEADER]: createHash("sha256").update(body).digest("hex"),
        [SHARD_SOURCE_BYTES_HEADER]: String(shard.data.bytesRead),
      });
      res.end(body);
    } catch (error) {
      if (error instanceof BadRequest) {
        res.status(error.status).json({ error: error.message });
      } else if (error instanceof DataError) {
        // The registered files went away or changed on the server: worth retrying after a fix.
        res.status(503).json({ error: `the dataset's files cannot be read on the server: ${error.message}` });
      } else {
        o.logger.error({ err: error }, "building a dataset shard failed");
        res.status(500).json({ error: (error as Error).message });
      }
    }
  });
  return router;
}
