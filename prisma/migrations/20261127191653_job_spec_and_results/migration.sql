-- AlterTable
ALTER TABLE "job" ADD COLUMN     "result" JSONB,
ADD COLUMN     "spec" JSONB NOT NULL DEFAULT '{}';

-- AlterTable
ALTER TABLE "run" ADD COLUMN     "result" JSONB;
