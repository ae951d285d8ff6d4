-- AlterEnum
ALTER TYPE "ArtifactKind" ADD VALUE 'UPLOAD';

-- DropIndex
DROP INDEX "architecture_name_key";

-- DropIndex
DROP INDEX "architecture_project_id_idx";

-- DropIndex
DROP INDEX "dataset_name_key";

-- DropIndex
DROP INDEX "dataset_project_id_idx";

-- DropIndex
DROP INDEX "meta_model_name_key";

-- DropIndex
DROP INDEX "meta_model_project_id_idx";

-- AlterTable
ALTER TABLE "architecture" ALTER COLUMN "project_id" SET DEFAULT '00000000-0000-0000-0000-000000000001';

-- AlterTable
ALTER TABLE "artifact" ADD COLUMN     "project_id" UUID NOT NULL DEFAULT '00000000-0000-0000-0000-000000000001';

-- Data (hand-written): an existing artifact belongs to its run's project, a registered meta
-- model's weights to that meta model's; anything else stays in "default".
UPDATE "artifact" AS a SET "project_id" = r."project_id" FROM "run" AS r WHERE a."run_id" = r."id";
UPDATE "artifact" AS a SET "project_id" = m."project_id" FROM "meta_model" AS m
  WHERE a."run_id" IS NULL AND m."checkpoint_id" = a."id";

-- AlterTable
ALTER TABLE "dataset" ALTER COLUMN "project_id" SET DEFAULT '00000000-0000-0000-0000-000000000001';

-- AlterTable
ALTER TABLE "meta_model" ALTER COLUMN "project_id" SET DEFAULT '00000000-0000-0000-0000-000000000001';

-- AlterTable
ALTER TABLE "project" ADD COLUMN     "artifact_quota_bytes" BIGINT;

-- AlterTable
ALTER TABLE "run" ALTER COLUMN "project_id" SET DEFAULT '00000000-0000-0000-0000-000000000001';

-- CreateTable
CREATE TABLE "job_event_batch" (
    "id" BIGSERIAL NOT NULL,
    "job_id" UUID NOT NULL,
    "batch_key" TEXT NOT NULL,
    "seqs" INTEGER[],
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "job_event_batch_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "job_event_batch_job_id_batch_key_key" ON "job_event_batch"("job_id", "batch_key");

-- CreateIndex
CREATE UNIQUE INDEX "architecture_project_id_name_key" ON "architecture"("project_id", "name");

-- CreateIndex
CREATE INDEX "artifact_project_id_sha256_idx" ON "artifact"("project_id", "sha256");

-- CreateIndex
CREATE UNIQUE INDEX "dataset_project_id_name_key" ON "dataset"("project_id", "name");

-- CreateIndex
CREATE UNIQUE INDEX "meta_model_project_id_name_key" ON "meta_model"("project_id", "name");

-- AddForeignKey
ALTER TABLE "artifact" ADD CONSTRAINT "artifact_project_id_fkey" FOREIGN KEY ("project_id") REFERENCES "project"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "job_event_batch" ADD CONSTRAINT "job_event_batch_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "job"("id") ON DELETE CASCADE ON UPDATE CASCADE;
