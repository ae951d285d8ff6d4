/**
 * `PUT /artifacts/<sha256>` — API workers upload checkpoints, weights and ONNX models here,
 * with their worker token. The body streams into the store's temporary file while it is hashed;
 * only bytes that hash to the address in the URL enter the store (`putStream`). Uploading what
 * is already stored is a no-op (200) once the stored copy is verified, so a worker that retries
 * after a lost response is safe.
 */
import type { Request, Response } from "express";
import { ArtifactIntegrityError, type ArtifactStore } from "../platform/artifacts/store.ts";
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
    // Skipping the upload trusts the stored copy for good, so it is hashed here: a damaged copy
    // (truncated by a crash before writes were fsynced) is replaced by the uploaded bytes.
    const length = Number(req.headers["content-length"]);
    const known = Number.isSafeInteger(length) && length >= 0 ? { sizeBytes: length } : {};
    if (await store.has(sha256, { ...known, verify: true })) {
      req.resume();
      res.status(200).json({ sha256, stored: false });
      return;
    }
    try {
      // Streamed into the store, hashed on the way; stored only if the bytes match the address.
      const { sizeBytes } = await store.putStream(req, { sha256 });
      res.status(201).json({ sha256, sizeBytes, stored: true });
    } catch (error) {
      if (error instanceof ArtifactIntegrityError) {
        res.status(422).json({ error: error.message });
        return;
      }
      logger.warn({ err: error, sha256 }, "artifact upload failed");
      if (!res.headersSent) res.status(500).json({ error: (error as Error).message });
    }
  };
}
