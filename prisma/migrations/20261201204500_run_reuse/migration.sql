-- Runs that reuse an earlier run's finished modules (startRun reuseModulesFrom / retrain).
-- Nullable columns: existing rows are runs and modules that reused nothing.

-- AlterTable
ALTER TABLE "module" ADD COLUMN     "reused_from_id" UUID,
ADD COLUMN     "reused_weights_id" UUID;

-- AlterTable
ALTER TABLE "run" ADD COLUMN     "reused_from_run_id" UUID;

-- AddForeignKey
ALTER TABLE "run" ADD CONSTRAINT "run_reused_from_run_id_fkey" FOREIGN KEY ("reused_from_run_id") REFERENCES "run"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "module" ADD CONSTRAINT "module_reused_from_id_fkey" FOREIGN KEY ("reused_from_id") REFERENCES "module"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "module" ADD CONSTRAINT "module_reused_weights_id_fkey" FOREIGN KEY ("reused_weights_id") REFERENCES "artifact"("id") ON DELETE SET NULL ON UPDATE CASCADE;
