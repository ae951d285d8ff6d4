/**
 * startRun's `reuseModulesFrom` / `retrain`: a run that starts from an earlier INCUBATION run's
 * meta model and finished modules and trains only the listed modules again. This checks that the
 * source fits (same project, architecture shape, split and meta model; the reused modules
 * finished with weights) and says what the new run's rows reuse. Mismatches are userErrors with
 * code MISMATCH that name both sides; a source with nothing finished to reuse is INVALID.
 */
import type { Architecture, MetaModel, Run } from "../../generated/prisma/client.ts";
import { ArtifactKind, JobState, ModuleState, RunKind, RunState } from "../../generated/prisma/enums.ts";
import { moduleRanges } from "../../incubation/modules.ts";
import { targetConfig } from "../../platform/dispatch/plan.ts";
import { runSplit } from "../../platform/run-split.ts";
import type { ApiContext } from "../context.ts";
import type { UserError } from "../user-errors.ts";
import { userError } from "../user-errors.ts";
import { lookup } from "./lookup.ts";

export interface ReuseInput {
  kind: RunKind;
  metaModelId?: string | null;
  reuseModulesFrom?: string | null;
  retrain?: number[] | null;
}

/** What a reuse run's rows take from its source. */
export interface ReusePlan {
  sourceRunId: string;
  /** The source's meta model: the new run is given it, so it pre-trains nothing. */
  metaModelId: string;
  /** Per reused module index: the source module and the weights artifact it points at. */
  reused: Map<number, { reusedFromId: string; reusedWeightsId: string }>;
  /** The source's own split (empty: its architecture's); the reuse run keeps it. */
  moduleSplit: number[];
}

const at = (field: string, ...rest: string[]) => ["input", field, ...rest];

/** The meta model that incubated a run's modules: the one it was given, else the one it pre-trained. */
async function metaModelOf(run: Run, ctx: ApiContext): Promise<MetaModel | null> {
  if (run.metaModelId) return ctx.loaders.metaModel.load(run.metaModelId);
  return ctx.loaders.metaModelBySourceRun.load(run.id);
}

/** "depth 4 ≠ 6, width 32 ≠ 64": the model-shape fields in which two architectures differ. */
function shapeDifferences(a: Architecture, b: Architecture): string[] {
  const ca = targetConfig(a) as unknown as Record<string, unknown>;
  const cb = targetConfig(b) as unknown as Record<string, unknown>;
  return Object.keys(ca)
    .filter((k) => JSON.stringify(ca[k]) !== JSON.stringify(cb[k]))
    .map((k) => `${k} ${JSON.stringify(ca[k])} ≠ ${JSON.stringify(cb[k])}`);
}

/** The weights a finished module holds: the artifact it reused, else its newest MODULAR job's. */
async function weightsOfModule(
  ctx: ApiContext,
  m: { id: string; reusedWeightsId: string | null },
): Promise<string | null> {
  if (m.reusedWeightsId) return m.reusedWeightsId;
  const job = await ctx.db.job.findFirst({
    where: { moduleId: m.id, stage: "MODULAR", state: JobState.SUCCEEDED },
    orderBy: { createdAt: "desc" },
  });
  if (!job) return null;
  const weights = await ctx.db.artifact.findFirst({
    where: { jobId: job.id, kind: ArtifactKind.WEIGHTS },
    orderBy: { createdAt: "desc" },
  });
  return weights?.id ?? null;
}

/** `retrain`: module indexes of the architecture, each once. */
function checkRetrain(retrain: readonly number[], numModules: number, errors: UserError[]): void {
  const seen = new Set<number>();
  for (const [i, index] of retrain.entries()) {
    if (index < 0 || index >= numModules)
      errors.push(
        userError(
          at("retrain", String(i)),
          `retrain[${i}]: module ${index} does not exist; the architecture has modules 0 to ${numModules - 1}`,
        ),
      );
    else if (seen.has(index))
      errors.push(userError(at("retrain", String(i)), `retrain[${i}]: module ${index} is listed twice`));
    seen.add(index);
  }
}

/**
 * The reuse plan of a startRun input, or null when it reuses nothing or is refused (the reasons
 * pushed onto `errors`). `arch`, `meta`: the input's, already looked up; `projectId`: the new run's.
 */
export async function checkReuse(
  ctx: ApiContext,
  input: ReuseInput,
  arch: Architecture | null,
  meta: MetaModel | null,
  projectId: string | null,
  errors: UserError[],
): Promise<ReusePlan | null> {
  const retrain = input.retrain ?? [];
  if (input.reuseModulesFrom == null) {
    if (retrain.length > 0)
      errors.push(
        userError(
          at("retrain"),
          "retrain lists modules to train again in a reuse run; set reuseModulesFrom too",
        ),
      );
    return null;
  }
  if (input.kind !== RunKind.INCUBATION) {
    errors.push(
      userError(at("reuseModulesFrom"), `a ${input.kind} run has no modules to reuse; use kind INCUBATION`),
    );
    return null;
  }
  // Through the caller's scoped client: a run of a project it does not reach is "not found".
  const source = await lookup(errors, "reuseModulesFrom", "Run", input.reuseModulesFrom, (id) =>
    ctx.loaders.run.load(id),
  );
  if (!source || !arch) return null;
  const before = errors.length;
  if (projectId !== null && source.projectId !== projectId)
    errors.push(
      userError(
        at("reuseModulesFrom"),
        "the source run belongs to another project than this one; reuse a run of the same project",
        "WRONG_PROJECT",
      ),
    );
  if (source.kind !== RunKind.INCUBATION) {
    errors.push(
      userError(
        at("reuseModulesFrom"),
        `the source run is ${source.kind}; only an INCUBATION run's modules can be reused`,
        "MISMATCH",
      ),
    );
    return null;
  }

  const sourceArch = await ctx.loaders.architecture.load(source.architectureId);
  if (sourceArch && sourceArch.id !== arch.id) {
    const differences = shapeDifferences(arch, sourceArch);
    if (differences.length > 0)
      errors.push(
        userError(
          at("architectureId"),
          `architecture "${arch.name}" ≠ the source run's "${sourceArch.name}": ${differences.join(", ")}`,
          "MISMATCH",
        ),
      );
  }
  const sourceModules = await ctx.db.module.findMany({
    where: { runId: source.id },
    orderBy: { index: "asc" },
  });
  const blocks = (ranges: { start: number; end: number }[]) =>
    `[${ranges.map((r) => `${r.start}-${r.end}`).join(", ")}]`;
  // A source whose split the planner chose passes it on (its modules are what is reused).
  const split = runSplit(source, arch);
  const ours = moduleRanges(split);
  const theirs = sourceModules.map((m) => ({ start: m.blockStart, end: m.blockEnd }));
  if (blocks(ours) !== blocks(theirs))
    errors.push(
      userError(
        at("architectureId"),
        `split ≠ the source run's: blocks ${blocks(ours)} (${ours.length} modules) ≠ ${blocks(theirs)} ` +
          `(${theirs.length} modules); module boundaries must match to reuse modules`,
        "MISMATCH",
      ),
    );

  const sourceMeta = await metaModelOf(source, ctx);
  if (!sourceMeta)
    errors.push(
      userError(
        at("reuseModulesFrom"),
        "the source run has no meta model (its pre-training did not finish); reuse a run whose modules trained",
        "INVALID",
      ),
    );
  else if (meta && meta.id !== sourceMeta.id)
    errors.push(
      userError(
        at("metaModelId"),
        `meta model "${meta.name}" ≠ the source run's "${sourceMeta.name}"; leave metaModelId out to use the source's`,
        "MISMATCH",
      ),
    );

  checkRetrain(retrain, split.length, errors);
  if (errors.length > before || !sourceMeta) return null;

  const reused = new Map<number, { reusedFromId: string; reusedWeightsId: string }>();
  for (const m of sourceModules) {
    if (retrain.includes(m.index)) continue;
    const weights = m.state === ModuleState.SUCCEEDED ? await weightsOfModule(ctx, m) : null;
    if (!weights) {
      errors.push(
        userError(
          at("reuseModulesFrom"),
          `module ${m.index} of the source run is ${m.state}${source.state === RunState.SUCCEEDED ? "" : ` (the run is ${source.state})`}` +
            ` and has no weights to reuse; retrain it (retrain: [${m.index}]) or reuse a run whose modules finished`,
          "INVALID",
        ),
      );
      continue;
    }
    reused.set(m.index, { reusedFromId: m.id, reusedWeightsId: weights });
  }
  if (errors.length > before) return null;
  return { sourceRunId: source.id, metaModelId: sourceMeta.id, reused, moduleSplit: [...source.moduleSplit] };
}
