/**
 * `PUT /artifacts/<sha256>` — API workers upload checkpoints, weights and ONNX models here,
 * with their worker token. The body streams to a temporary file while it is hashed; only bytes
 * that hash to the address in the URL enter the store. Uploading what is already stored is a
 * no-op (200), so a worker that retries after a lost response is safe.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Request, Response } from "express";
import type { ArtifactStore } from "../platform/artifacts/store.ts";
import type { Logger } from "../platform/logger.ts";

/** Mount after `requireWorkerToken` (worker-auth.ts): only workers upload. */
export function artifactUploadHandler(store: ArtifactStore, logger: Logger) {
  return async (req: Request, res: Response) => {
    const sha256 = String(req.params.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      res
        .status(400)
        .json({ error: `"${sha256}" is not a sha256 content address (64 lowercase hex digits)` });
      return;
    }
    if (await store.has(sha256)) {
      req.resume();
      res.status(200).json({ sha256, stored: false });
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), "incubator-upload-"));
    try {
      const temp = join(dir, "upload");
      const hash = createHash("sha256");
      let sizeBytes = 0;
      const hashing = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          hash.update(chunk);
          sizeBytes += chunk.length;
          callback(null, chunk);
        },
      });
      await pipeline(req, hashing, createWriteStream(temp));
      const actual = hash.digest("hex");
      if (actual !== sha256) {
        res
          .status(422)
          .json({ error: `the uploaded bytes hash to ${actual}, not ${sha256}; nothing was stored` });
        return;
      }
      await store.putFile(temp);
      res.status(201).json({ sha256, sizeBytes, stored: true });
    } catch (error) {
      logger.warn({ err: error, sha256 }, "artifact upload failed");
      if (!res.headersSent) res.status(500).json({ error: (error as Error).message });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
