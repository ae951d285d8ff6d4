-- Typed run events and artifact kinds (src/platform/events/run-event.ts).
-- Existing rows are rewritten into the new shapes in place, so old runs keep their history.

-- CreateEnum
CREATE TYPE "RunEventType" AS ENUM ('RUN_STATE', 'JOB_STATE', 'MODULE_STATE', 'JOB_STARTED', 'PROGRESS', 'METRIC', 'ARTIFACT', 'LOG');

-- CreateEnum
CREATE TYPE "ArtifactKind" AS ENUM ('CHECKPOINT', 'WEIGHTS', 'ASSEMBLED_MODEL', 'FINAL_WEIGHTS', 'FINAL_MODEL_ONNX', 'META_WEIGHTS');

-- Artifact kinds were strings such as "final-model-onnx".
ALTER TABLE "artifact" ALTER COLUMN "kind" TYPE "ArtifactKind" USING (upper(replace("kind", '-', '_'))::"ArtifactKind");

-- Run events: STATE rows split by their payload's scope; a job's "start" (stored as LOG) becomes
-- JOB_STARTED; stages are StageKind names ("modular" → "MODULAR"); payloads lose the fields that
-- are now columns or the type.
ALTER TABLE "run_event" ADD COLUMN "type_new" "RunEventType";

UPDATE "run_event" SET "type_new" = 'RUN_STATE', "payload" = jsonb_strip_nulls(jsonb_build_object(
  'state', "payload"->>'state',
  'error', "payload"->'error',
  'finalAccuracy', "payload"->'result'->'evalAccuracy'))
WHERE "type" = 'STATE' AND "payload"->>'scope' = 'run';

UPDATE "run_event" e SET "type_new" = 'JOB_STATE', "payload" = jsonb_strip_nulls(jsonb_build_object(
  'jobId', coalesce(e."payload"->>'jobId', (
    SELECT j."id"::text FROM "job" j LEFT JOIN "module" m ON m."id" = j."module_id"
    WHERE j."run_id" = e."run_id" AND j."stage"::text = upper(e."payload"->>'stage')
      AND m."index" IS NOT DISTINCT FROM e."module_index"
    ORDER BY j."created_at" DESC LIMIT 1)),
  'stage', upper(e."payload"->>'stage'),
  'state', CASE e."payload"->>'state' WHEN 'RETRYING' THEN 'QUEUED' ELSE e."payload"->>'state' END,
  'attempt', e."payload"->'attempt',
  'workerId', e."payload"->'workerId',
  'reason', e."payload"->'reason'))
WHERE e."type" = 'STATE' AND e."payload"->>'scope' = 'job';

UPDATE "run_event" SET "type_new" = 'MODULE_STATE', "payload" = jsonb_build_object(
  'state', "payload"->>'state',
  'retry', coalesce("payload"->'retry', 'false'::jsonb))
WHERE "type" = 'STATE' AND "payload"->>'scope' = 'module';

UPDATE "run_event" SET "type_new" = 'JOB_STARTED', "payload" = jsonb_build_object(
  'stage', upper(coalesce("payload"->>'stage', "payload"->>'phase')),
  'totalSteps', "payload"->'totalSteps',
  'startStep', "payload"->'startStep',
  'trainImages', "payload"->'trainImages',
  'data', coalesce("payload"->'data', '{"cache":"off","bytesRead":0,"bytesFetched":0,"cachedBytes":0,"records":0}'::jsonb))
WHERE "type" = 'LOG' AND "payload"->>'type' = 'start';

UPDATE "run_event" SET "type_new" = 'PROGRESS',
  "payload" = ("payload" - 'type') || jsonb_build_object('stage', upper("payload"->>'stage'))
WHERE "type" = 'PROGRESS';

UPDATE "run_event" SET "type_new" = 'METRIC',
  "payload" = ("payload" - 'type') || jsonb_build_object('stage', upper("payload"->>'stage'))
WHERE "type" = 'METRIC';

UPDATE "run_event" SET "type_new" = 'ARTIFACT',
  "payload" = "payload" || jsonb_build_object('kind', upper(replace("payload"->>'kind', '-', '_')))
WHERE "type" = 'ARTIFACT';

UPDATE "run_event" SET "type_new" = 'LOG', "payload" = jsonb_build_object(
  'level', CASE lower("payload"->>'level') WHEN 'error' THEN 'ERROR' WHEN 'warn' THEN 'WARN' ELSE 'INFO' END,
  'message', coalesce("payload"->>'message', "payload"::text))
WHERE "type" = 'LOG' AND "type_new" IS NULL;

-- Whatever still has no type (or a job state whose job cannot be found) is kept as a log line.
UPDATE "run_event" SET "type_new" = 'LOG', "payload" = jsonb_build_object('level', 'INFO', 'message', "payload"::text)
WHERE "type_new" IS NULL OR ("type_new" = 'JOB_STATE' AND NOT ("payload" ? 'jobId'));

ALTER TABLE "run_event" DROP COLUMN "type";
ALTER TABLE "run_event" RENAME COLUMN "type_new" TO "type";
ALTER TABLE "run_event" ALTER COLUMN "type" SET NOT NULL;
