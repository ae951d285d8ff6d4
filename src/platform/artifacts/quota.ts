/**
 * The artifact quota of a project: how many bytes of artifacts it may hold. Usage counts each
 * content hash once per project — a checkpoint uploaded twice, or an upload registered as a meta
 * model's weights, costs its bytes once — since the store keeps one copy per hash.
 *
 * Every write that adds artifact rows to a project checks the quota inside its transaction,
 * after locking the project's row (`lockProject`), so two uploads racing for the last bytes
 * cannot both pass. Writers that also lock a run row take the run's lock first (StateWriter,
 * recordEvents), so the two locks are always taken in the same order.
 */
import type { Prisma } from "../../generated/prisma/client.ts";
import type { Db } from "../db/client.ts";

type Tx = Prisma.TransactionClient | Db;

/** The refusal's code, on HTTP (413 JSON `code`) and in worker failures. */
export const ARTIFACT_QUOTA_EXCEEDED = "ARTIFACT_QUOTA_EXCEEDED";

/** Adding the files would take the project past its artifact quota. */
export class QuotaExceededError extends Error {
  override name = "QuotaExceededError";
  readonly code = ARTIFACT_QUOTA_EXCEEDED;
  constructor(
    readonly project: string,
    readonly usageBytes: number,
    readonly addBytes: number,
    readonly quotaBytes: number,
  ) {
    super(
      `project "${project}" would exceed its artifact quota: ${usageBytes} bytes used + ${addBytes} new > ${quotaBytes} bytes (an admin raises it with \`incubator project quota ${project} <bytes>\`)`,
    );
  }
}

/**
 * Whether a worker's call was refused for the quota: the lifecycle's own error (database
 * workers) or the API's QUOTA_EXCEEDED userError as api-backend.ts raises it.
 */
export const isQuotaRefusal = (error: unknown): boolean =>
  typeof error === "object" &&
  error !== null &&
  (error as { code?: unknown }).code === ARTIFACT_QUOTA_EXCEEDED;

export interface QuotaFile {
  sha256: string;
  sizeBytes: number | bigint;
}

/** Bytes the project's artifacts take, each content hash once. */
export async function artifactUsageBytes(db: Tx, projectId: string): Promise<number> {
  const [row] = await db.$queryRaw<{ bytes: bigint | null }[]>`
    SELECT sum(size) AS bytes FROM (
      SELECT max("size_bytes") AS size FROM "artifact" WHERE "project_id" = ${projectId}::uuid GROUP BY "sha256"
    ) AS per_hash`;
  return Number(row?.bytes ?? 0n);
}

/** The project's quota: its own, or `defaultQuotaBytes` (ARTIFACT_QUOTA_BYTES). */
export const quotaBytesOf = (project: { artifactQuotaBytes: bigint | null }, defaultQuotaBytes: number) =>
  project.artifactQuotaBytes === null ? defaultQuotaBytes : Number(project.artifactQuotaBytes);

/** Lock the project's row until the transaction ends (serialises quota checks per project). */
async function lockProject(tx: Tx, projectId: string) {
  const [project] = await tx.$queryRaw<{ name: string; artifact_quota_bytes: bigint | null }[]>`
    SELECT "name", "artifact_quota_bytes" FROM "project" WHERE "id" = ${projectId}::uuid FOR UPDATE`;
  if (!project) throw new Error(`no project ${projectId}`);
  return { name: project.name, artifactQuotaBytes: project.artifact_quota_bytes };
}

/**
 * Inside a transaction, before the rows are written: throws QuotaExceededError when the files
 * the project does not hold yet (by hash) would take it past its quota.
 */
export async function checkArtifactQuota(
  tx: Tx,
  projectId: string,
  files: readonly QuotaFile[],
  defaultQuotaBytes: number,
): Promise<void> {
  if (files.length === 0) return;
  const project = await lockProject(tx, projectId);
  const hashes = [...new Set(files.map((f) => f.sha256))];
  const held = await tx.artifact.findMany({
    where: { projectId, sha256: { in: hashes } },
    select: { sha256: true },
    distinct: ["sha256"],
  });
  const heldHashes = new Set(held.map((a) => a.sha256));
  const added = new Map<string, number>();
  for (const f of files) if (!heldHashes.has(f.sha256)) added.set(f.sha256, Number(f.sizeBytes));
  const addBytes = [...added.values()].reduce((sum, n) => sum + n, 0);
  if (addBytes === 0) return;
  const quota = quotaBytesOf(project, defaultQuotaBytes);
  const usage = await artifactUsageBytes(tx, projectId);
  if (usage + addBytes > quota) throw new QuotaExceededError(project.name, usage, addBytes, quota);
}
