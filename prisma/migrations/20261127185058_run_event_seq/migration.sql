-- AlterTable
ALTER TABLE "run" ADD COLUMN     "last_event_seq" INTEGER NOT NULL DEFAULT 0;
