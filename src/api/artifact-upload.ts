/**
 * `PUT /artifacts/<sha256>` — API workers upload checkpoints, weights and ONNX models here,
 * with their worker token. The body streams into the store's temporary file while it is hashed;
 * only bytes that hash to the address in the URL enter the store (`putStream`). Uploading what
 * is already stored is a no-op (200) once the stored copy is verified, so a worker that retries
 * after a lost response is safe.
 */
import { Readable } from "node:stream";
import type { Request, Response } from "express";
import {
  ArtifactIntegrityError,
  type ArtifactStore,
  ArtifactStoreUnavailableError,
} from "../platform/artifacts/store.ts";
import type { Logger } from "../platform/logger.ts";
import { requestIdOf, sendError } from "./errors.ts";

/** The body grew past the upload limit (`maxBytes`). */
class TooLarge extends Error {}

/** The request body, failing with TooLarge once it passes `maxBytes`. */
async function* limited(req: Request, maxBytes: number) {
  let sizeBytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    sizeBytes += chunk.length;
    if (sizeBytes > maxBytes) throw new TooLarge();
    yield chunk;
  }
}

/**
 * What a client is told when the store fails (the details go to the log): a stored copy whose
 * bytes do not match its address, a store that cannot be reached (a bucket, its credentials), or
 * anything else.
 */
export function storeFailure(error: unknown): [status: number, code: string, message: string] {
  if (error instanceof ArtifactIntegrityError)
    return [
      500,
      "ARTIFACT_CORRUPT",
      "the stored artifact does not match its sha256 and was not served; upload it again",
    ];
  if (error instanceof ArtifactStoreUnavailableError)
    return [503, "ARTIFACT_STORE_UNAVAILABLE", "the artifact store cannot be reached; try again later"];
  return [500, "INTERNAL_SERVER_ERROR", "Internal server error"];
}

/** Mount behind auth.guard: workers and operators upload (auth/policy.ts). */
export function artifactUploadHandler(store: ArtifactStore, logger: Logger, limits: { maxBytes: number }) {
  return async (req: Request, res: Response) => {
    const sha256 = String(req.params.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      sendError(req, res, 400, "BAD_REQUEST", "not a sha256 content address (64 lowercase hex digits)");
      return;
    }
    const tooLarge = () => {
      res.setHeader("connection", "close");
      sendError(req, res, 413, "PAYLOAD_TOO_LARGE", `uploads are limited to ${limits.maxBytes} bytes`);
    };
    if (Number(req.headers["content-length"] ?? 0) > limits.maxBytes) {
      tooLarge();
      return;
    }
    // Skipping the upload trusts the stored copy for good, so it is hashed here: a damaged copy
    // (truncated by a crash before writes were fsynced) is replaced by the uploaded bytes.
    const length = Number(req.headers["content-length"]);
    const known = Number.isSafeInteger(length) && length >= 0 ? { sizeBytes: length } : {};
    try {
      if (await store.has(sha256, { ...known, verify: true })) {
        req.resume();
        res.status(200).json({ sha256, stored: false });
        return;
      }
      // Streamed into the store, hashed on the way; stored only if the bytes match the address.
      const { sizeBytes } = await store.putStream(Readable.from(limited(req, limits.maxBytes)), { sha256 });
      res.status(201).json({ sha256, sizeBytes, stored: true });
    } catch (error) {
      if (error instanceof ArtifactIntegrityError) {
        sendError(
          req,
          res,
          422,
          "CHECKSUM_MISMATCH",
          "the uploaded bytes do not hash to the address; nothing was stored",
        );
        return;
      }
      if (error instanceof TooLarge) {
        tooLarge();
        return;
      }
      logger.warn({ err: error, sha256, requestId: requestIdOf(req) }, "artifact upload failed");
      const [status, code, message] = storeFailure(error);
      sendError(req, res, status, code, message);
    }
  };
}
