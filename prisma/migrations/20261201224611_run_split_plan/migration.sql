-- A run's own split, when the split planner chose it at startRun (split BALANCED or AUTO), and
-- the plan. Empty / null on existing rows: they use their architecture's split.

-- AlterTable
ALTER TABLE "run" ADD COLUMN     "module_split" INTEGER[] DEFAULT ARRAY[]::INTEGER[],
ADD COLUMN     "split_plan" JSONB;
