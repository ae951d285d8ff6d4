-- A meta model's VitConfig lives in typed columns only: the fields that were only in the
-- `config` JSON get columns, every column is filled from `config` where a row has one (the
-- columns were copied from it), and `config` goes. Hand-edited: the generated diff dropped
-- `config` before reading it and could not add NOT NULL `num_classes` to existing rows.

-- AlterTable
ALTER TABLE "meta_model" ADD COLUMN     "channels" INTEGER NOT NULL DEFAULT 3,
ADD COLUMN     "layer_norm_eps" DOUBLE PRECISION NOT NULL DEFAULT 0.000001,
ADD COLUMN     "mlp_ratio" DOUBLE PRECISION NOT NULL DEFAULT 4,
ADD COLUMN     "num_classes" INTEGER,
ADD COLUMN     "qkv_bias" BOOLEAN NOT NULL DEFAULT true;

-- Rows with a config: it is the truth.
UPDATE "meta_model" SET
  "image_size"     = COALESCE(("config"->>'imageSize')::INTEGER, "image_size"),
  "channels"       = COALESCE(("config"->>'channels')::INTEGER, "channels"),
  "patch_size"     = COALESCE(("config"->>'patchSize')::INTEGER, "patch_size"),
  "width"          = COALESCE(("config"->>'width')::INTEGER, "width"),
  "num_modules"    = COALESCE(("config"->>'depth')::INTEGER, "num_modules"),
  "heads"          = COALESCE(("config"->>'heads')::INTEGER, "heads"),
  "mlp_ratio"      = COALESCE(("config"->>'mlpRatio')::DOUBLE PRECISION, "mlp_ratio"),
  "qkv_bias"       = COALESCE(("config"->>'qkvBias')::BOOLEAN, "qkv_bias"),
  "layer_norm_eps" = COALESCE(("config"->>'layerNormEps')::DOUBLE PRECISION, "layer_norm_eps"),
  "num_classes"    = ("config"->>'numClasses')::INTEGER
WHERE "config" IS NOT NULL;

-- Rows from before `config`: their columns stay; the fields they lacked were taken from the
-- target architecture of each run that used them. Take them from the architecture of the run
-- that pre-trained the row, else of the first run that used it; a row no run touched gets the
-- ViT defaults (already in place) and its dataset's classes, else 1000 (VIT_DEFAULTS).
UPDATE "meta_model" AS m SET
  "channels"    = COALESCE(a."channels", m."channels"),
  "mlp_ratio"   = COALESCE(a."mlp_ratio", m."mlp_ratio"),
  "num_classes" = COALESCE(a."num_classes", d."num_classes", 1000)
FROM "meta_model" AS m2
LEFT JOIN LATERAL (
  SELECT arch."channels", arch."mlp_ratio", arch."num_classes"
  FROM "run" AS r JOIN "architecture" AS arch ON arch."id" = r."architecture_id"
  WHERE r."id" = m2."source_run_id" OR r."meta_model_id" = m2."id"
  ORDER BY COALESCE(r."id" = m2."source_run_id", FALSE) DESC, r."created_at" ASC
  LIMIT 1
) AS a ON TRUE
LEFT JOIN "dataset" AS d ON d."id" = m2."dataset_id"
WHERE m."id" = m2."id" AND m."config" IS NULL;

ALTER TABLE "meta_model" ALTER COLUMN "num_classes" SET NOT NULL;
ALTER TABLE "meta_model" DROP COLUMN "config";
