-- AlterTable
ALTER TABLE "meta_model" ADD COLUMN     "config" JSONB,
ADD COLUMN     "source" JSONB;
