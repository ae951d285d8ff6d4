-- AlterTable
ALTER TABLE "job" ADD COLUMN     "labels" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "shard" INTEGER;

-- AlterTable
ALTER TABLE "run" ADD COLUMN     "placement" JSONB NOT NULL DEFAULT '[]';

-- CreateTable
CREATE TABLE "worker_token" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "secret_hash" CHAR(64) NOT NULL,
    "labels" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_seen_at" TIMESTAMP(3),
    "revoked_at" TIMESTAMP(3),

    CONSTRAINT "worker_token_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "worker_token_name_key" ON "worker_token"("name");

-- CreateIndex
CREATE UNIQUE INDEX "worker_token_secret_hash_key" ON "worker_token"("secret_hash");
