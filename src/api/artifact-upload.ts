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
import { requestIdOf, sendError } from "./errors.ts";

/** The body grew past the upload limit (`maxBytes`). */
class TooLarge extends Error {}

/** Mount after `requireWorkerToken` (worker-auth.ts): only workers upload. */
export function artifactUploadHandler(store: ArtifactStore, logger: Logger, limits: { maxBytes: number }) {
  return async (req: Request, res: Response) => {
    const sha256 = String(req.params.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      sendError(req, res, 400, "BAD_REQUEST", "not a sha256 content address (64 lowercase hex digits)");
      return;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limits.maxBytes) {
      res.setHeader("connection", "close");
      sendError(req, res, 413, "PAYLOAD_TOO_LARGE", `uploads are limited to ${limits.maxBytes} bytes`);
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
          sizeBytes += chunk.length;
          if (sizeBytes > limits.maxBytes) {
            callback(new TooLarge());
            return;
          }
          hash.update(chunk);
          callback(null, chunk);
        },
      });
      await pipeline(req, hashing, createWriteStream(temp));
      const actual = hash.digest("hex");
      if (actual !== sha256) {
        sendError(
          req,
          res,
          422,
          "CHECKSUM_MISMATCH",
          `the uploaded bytes hash to ${actual}; nothing was stored`,
        );
        return;
      }
      await store.putFile(temp);
      res.status(201).json({ sha256, sizeBytes, stored: true });
    } catch (error) {
      if (error instanceof TooLarge) {
        res.setHeader("connection", "close");
        sendError(req, res, 413, "PAYLOAD_TOO_LARGE", `uploads are limited to ${limits.maxBytes} bytes`);
        return;
      }
      logger.warn({ err: error, sha256, requestId: requestIdOf(req) }, "artifact upload failed");
      sendError(req, res, 500, "INTERNAL_SERVER_ERROR", "Internal server error");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
