/**
 * `PUT /artifacts/<sha256>` — API workers upload checkpoints, weights and ONNX models here with
 * their worker token; operators upload files (weights to register) with their API token. The body
 * streams into the store's temporary file while it is hashed; only bytes that hash to the address
 * in the URL enter the store (`putStream`). Uploading what is already stored is a no-op (200) once
 * the stored copy is verified, so a worker that retries after a lost response is safe.
 *
 * An operator's upload goes into a project (`?project=<Project ID>`, default as for creates:
 * auth/target-project.ts) as an UPLOAD artifact, within the project's artifact quota (413
 * ARTIFACT_QUOTA_EXCEEDED with the usage and the limit). A worker's upload belongs to no project
 * until its job records it (recordJobEvents / completeJob), where the run's project's quota applies.
 */
import { Readable } from "node:stream";
import type { Request, Response } from "express";
import { ArtifactKind } from "../generated/prisma/enums.ts";
import { checkArtifactQuota, QuotaExceededError } from "../platform/artifacts/quota.ts";
import {
  ArtifactIntegrityError,
  type ArtifactStore,
  ArtifactStoreUnavailableError,
} from "../platform/artifacts/store.ts";
import type { Db } from "../platform/db/client.ts";
import type { Logger } from "../platform/logger.ts";
import { principalOf } from "./auth/http-guard.ts";
import { resolveTargetProject } from "./auth/target-project.ts";
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

export interface UploadOptions {
  store: ArtifactStore;
  db: Db;
  logger: Logger;
  /** Bytes of one upload (MAX_UPLOAD_BYTES). */
  maxBytes: number;
  /** Artifact bytes of a project without its own quota (ARTIFACT_QUOTA_BYTES). */
  quotaBytes: number;
}

const quotaRefused = (req: Request, res: Response, e: QuotaExceededError) => {
  res.setHeader("connection", "close");
  sendError(req, res, 413, e.code, e.message, {
    usageBytes: e.usageBytes,
    addBytes: e.addBytes,
    quotaBytes: e.quotaBytes,
  });
};

/**
 * The project an operator's upload goes to (null for workers), or the refusal already sent.
 * With a Content-Length the quota is checked before any byte is read (again, under the
 * project's lock, once the file is stored).
 */
async function uploadProject(
  req: Request,
  res: Response,
  o: UploadOptions,
  sha256: string,
): Promise<string | null | "refused"> {
  const principal = principalOf(res);
  if (principal.kind === "worker") return null;
  const given = typeof req.query.project === "string" ? req.query.project : undefined;
  const target = await resolveTargetProject(o.db, principal, given, "?project=", { bareUuid: true });
  if (!("projectId" in target)) {
    res.setHeader("connection", "close");
    const status = target.problem === "REQUIRED" ? 400 : 404;
    sendError(
      req,
      res,
      status,
      target.problem === "REQUIRED" ? "PROJECT_REQUIRED" : "NOT_FOUND",
      target.message,
    );
    return "refused";
  }
  const length = Number(req.headers["content-length"]);
  if (Number.isSafeInteger(length) && length > 0) {
    try {
      await checkArtifactQuota(o.db, target.projectId, [{ sha256, sizeBytes: length }], o.quotaBytes);
    } catch (error) {
      if (!(error instanceof QuotaExceededError)) throw error;
      quotaRefused(req, res, error);
      return "refused";
    }
  }
  return target.projectId;
}

/**
 * The upload as the project's UPLOAD artifact, unless the project holds that content already;
 * whether it is new to the project.
 */
async function recordUpload(o: UploadOptions, projectId: string, sha256: string, sizeBytes: number) {
  return o.db.$transaction(async (tx) => {
    await checkArtifactQuota(tx, projectId, [{ sha256, sizeBytes }], o.quotaBytes);
    if (await tx.artifact.findFirst({ where: { projectId, sha256 }, select: { id: true } })) return false;
    await tx.artifact.create({
      data: { projectId, kind: ArtifactKind.UPLOAD, sha256, sizeBytes: BigInt(sizeBytes) },
    });
    return true;
  });
}

/** Mount behind auth.guard: workers and operators upload (auth/policy.ts). */
export function artifactUploadHandler(o: UploadOptions) {
  const { store, logger } = o;
  return async (req: Request, res: Response) => {
    const sha256 = String(req.params.sha256);
    if (!/^[0-9a-f]{64}$/.test(sha256)) {
      sendError(req, res, 400, "BAD_REQUEST", "not a sha256 content address (64 lowercase hex digits)");
      return;
    }
    const tooLarge = () => {
      res.setHeader("connection", "close");
      sendError(req, res, 413, "PAYLOAD_TOO_LARGE", `uploads are limited to ${o.maxBytes} bytes`);
    };
    if (Number(req.headers["content-length"] ?? 0) > o.maxBytes) {
      tooLarge();
      return;
    }
    try {
      const projectId = await uploadProject(req, res, o, sha256);
      if (projectId === "refused") return;
      // Skipping the upload trusts the stored copy for good, so it is hashed here: a damaged copy
      // (truncated by a crash before writes were fsynced) is replaced by the uploaded bytes.
      // Without a Content-Length the size is unknown: the bytes are streamed in again (harmless).
      const length = Number(req.headers["content-length"]);
      let stored = false;
      let sizeBytes = length;
      if (
        Number.isSafeInteger(length) &&
        length >= 0 &&
        (await store.has(sha256, { sizeBytes: length, verify: true }))
      ) {
        req.resume();
      } else {
        // Streamed into the store, hashed on the way; stored only if the bytes match the address.
        sizeBytes = (await store.putStream(Readable.from(limited(req, o.maxBytes)), { sha256 })).sizeBytes;
        stored = true;
      }
      // An operator is told whether the file is new to its project, never whether another
      // project's upload or run already put these bytes in the (shared) store.
      if (projectId !== null) stored = await recordUpload(o, projectId, sha256, sizeBytes);
      res.status(stored ? 201 : 200).json({ sha256, sizeBytes, stored });
    } catch (error) {
      if (error instanceof QuotaExceededError) {
        quotaRefused(req, res, error);
        return;
      }
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
