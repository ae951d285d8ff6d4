-- Accuracy-curve points (a job's model scored on the held-out subset every recipe.evalEvery
-- steps) as their own run event type: src/platform/events/run-event.ts `evalPoint`.

-- AlterEnum
ALTER TYPE "RunEventType" ADD VALUE 'EVAL_POINT';
