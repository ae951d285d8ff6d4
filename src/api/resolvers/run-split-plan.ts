/**
 * startRun's `split`: ARCHITECTURE (the architecture's split), BALANCED (its K, boundaries from
 * the split planner) or AUTO (K and boundaries from the planner). The plan is measured here, on
 * the API's machine, in a worker thread so the API keeps answering meanwhile
 * (`incubation/cost-model-thread.ts`: small real hybrids of the target with the run's recipe,
 * seconds, one at a time, cached per process); workers elsewhere may be
 * faster or slower, but what the plan balances — the ratios between the pieces — moves less.
 */
import type { SplitPlanning } from "../../generated/graphql.ts";
import type { Architecture, MetaModel } from "../../generated/prisma/client.ts";
import { planFromMeasurementInThread } from "../../incubation/cost-model-thread.ts";
import { type RecipeOverrides, resolveRecipe } from "../../incubation/recipe.ts";
import type { SplitPlan } from "../../incubation/split-planner.ts";
import { targetConfig } from "../../platform/dispatch/plan.ts";
import { metaModelConfig } from "../../platform/meta-model-source.ts";
import { type UserError, userError } from "../user-errors.ts";

interface SplitInput {
  kind: string;
  split?: SplitPlanning | null;
  reuseModulesFrom?: string | null;
  placement?: { moduleIndex?: number | null }[] | null;
}

const at = ["input", "split"];

/** What a planned split cannot go with, as userErrors on `split` (nothing measured yet). */
export function checkSplitRequest(input: SplitInput, meta: MetaModel | null, errors: UserError[]): void {
  const split = input.split ?? "ARCHITECTURE";
  if (split === "ARCHITECTURE") return;
  if (input.kind !== "INCUBATION")
    errors.push(userError(at, `a ${input.kind} run has no modules to plan; leave split out`));
  if (input.reuseModulesFrom != null)
    errors.push(
      userError(
        at,
        "a reuse run keeps its source's split (the reused modules are that split); leave split out",
      ),
    );
  if (split === "AUTO" && meta)
    errors.push(
      userError(at, "a meta model fixes K (one block per module); use split BALANCED to plan its boundaries"),
    );
  if (split === "AUTO" && (input.placement ?? []).some((p) => p.moduleIndex != null))
    errors.push(
      userError(
        at,
        "AUTO chooses K, so placement cannot name module indexes yet; use BALANCED, or place every job",
      ),
    );
}

/** The plan for a valid planned request (null for ARCHITECTURE). */
export async function planRunSplit(
  input: SplitInput & { recipe: string; overrides?: unknown },
  arch: Architecture,
  meta: MetaModel | null,
): Promise<SplitPlan | null> {
  const split = input.split ?? "ARCHITECTURE";
  if (split === "ARCHITECTURE") return null;
  const metaConfig = meta ? metaModelConfig(meta) : null;
  const { plan } = await planFromMeasurementInThread({
    target: targetConfig(arch),
    ...(metaConfig ? { metaOverrides: { width: metaConfig.width, mlpRatio: metaConfig.mlpRatio } } : {}),
    recipe: resolveRecipe(input.recipe, (input.overrides ?? {}) as RecipeOverrides),
    modules: split === "AUTO" ? "auto" : arch.moduleSplit.length,
  });
  return plan;
}
