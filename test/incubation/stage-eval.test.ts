/**
 * `incubator eval-stages` on tiny real runs: the stage accuracies it reads from a run folder agree
 * with what the jobs themselves compute (assembled before FT: a fine-tuning job of 0 steps that
 * assembles and evaluates; final: results.json), and bad folders fail with one line naming the
 * file or field.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { type IncubationResult, incubate, trainEndToEnd } from "../../src/incubation/incubate.ts";
import { runJob } from "../../src/incubation/job.ts";
import type { StageEvaluation } from "../../src/incubation/stage-eval.ts";
import { spawnIncubator } from "../helpers/process.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("stage-eval");
const LIMIT = 96;
/** The demo preset cut to a few steps: what matters is that every stage has trained weights. */
const SETS = [
  "recipe.steps.pretrain=6",
  "recipe.steps.modular=4",
  "recipe.steps.finetune=4",
  "recipe.steps.e2e=4",
  "recipe.batchSize=32",
  `evalLimit=${LIMIT}`,
];
const config = loadRunConfig("demo", SETS);

async function evalStages(...args: string[]) {
  const proc = spawnIncubator(["eval-stages", ...args], {});
  return { code: await proc.exited, output: proc.output() };
}

async function evalStagesJson(...args: string[]): Promise<StageEvaluation> {
  const { code, output } = await evalStages(...args, "--json", "--threads", "1");
  expect(output.trim().startsWith("{"), output).toBe(true);
  expect(code).toBe(0);
  return JSON.parse(output);
}

describe("incubator eval-stages", () => {
  const diDir = join(dir, "di");
  let di: IncubationResult;
  beforeAll(async () => {
    di = await incubate({ ...config, outDir: diDir, threads: 1 });
  }, 120_000);

  it("scores the meta model, one hybrid per module, the assembled target and the final model", async () => {
    const stages = await evalStagesJson(diDir);
    expect(stages.kind).toBe("incubation");
    expect(stages.stages.map((s) => s.stage)).toEqual([
      "meta",
      "hybrid-0",
      "hybrid-1",
      "hybrid-2",
      "hybrid-3",
      "assembled",
      "final",
    ]);
    for (const s of stages.stages) expect(s.images).toBe(LIMIT);
    const byStage = new Map(stages.stages.map((s) => [s.stage, s]));

    // The final model scores what the run reported on the same images.
    expect(byStage.get("final")!.accuracy).toBe(di.accuracy);
    expect(byStage.get("final")!.loss).toBeCloseTo(di.loss!, 5);

    // Assembled before FT, by hand through the jobs' own path: a fine-tuning job that assembles
    // the modules' weights, trains 0 steps and evaluates.
    const byHand = await runJob({
      phase: "finetune",
      target: config.target,
      split: config.split,
      meta: config.meta,
      dataset: config.dataset,
      evalDataset: config.evalDataset!,
      recipe: { ...config.recipe, steps: { ...config.recipe.steps, finetune: 0 } },
      seed: config.seed,
      outDir: join(dir, "by-hand"),
      assembleFrom: di.moduleWeights!.map((weights, moduleIndex) => ({ moduleIndex, weights })),
      evalLimit: LIMIT,
      threads: 1,
    });
    expect(byStage.get("assembled")!.accuracy).toBe(byHand.evalAccuracy);
    expect(byStage.get("assembled")!.loss).toBeCloseTo(byHand.evalLoss!, 5);
    // …and it is not the final model under another name: 4 FT steps moved the loss.
    expect(Math.abs(byStage.get("assembled")!.loss - di.loss!)).toBeGreaterThan(1e-3);
  }, 120_000);

  it("reads an older results.json (no recorded config) with the run's --config and --set", async () => {
    const old = join(dir, "old");
    const { config: _recorded, ...results } = JSON.parse(readFileSync(join(diDir, "results.json"), "utf8"));
    useFolder(old, results);
    const refused = await evalStages(old);
    expect(refused).toEqual({
      code: 1,
      output: `incubator: ${join(old, "results.json")} records no config (written before runs recorded theirs); pass --config and the --set overrides the run was started with\n`,
    });
    // Its files are found where results.json says they were written.
    const stages = await evalStagesJson(
      old,
      "--config",
      "demo",
      ...SETS.flatMap((s) => ["--set", s]),
      "--limit",
      "32",
    );
    expect(stages.stages.map((s) => s.stage)).toHaveLength(7);
    expect(stages.images).toBe(32);
  }, 120_000);

  it("fails with one line naming the missing file or field", async () => {
    const results = JSON.parse(readFileSync(join(diDir, "results.json"), "utf8"));
    const empty = join(dir, "empty");
    useFolder(empty);
    expect(await evalStages(empty)).toEqual({
      code: 1,
      output: `incubator: ${join(empty, "results.json")}: no such file; is ${empty} a finished run's folder?\n`,
    });

    const moved = join(dir, "moved");
    const modules = [...results.moduleWeights];
    modules[2] = "/elsewhere/module-2.safetensors";
    useFolder(moved, { ...results, moduleWeights: modules });
    expect(await evalStages(moved)).toEqual({
      code: 1,
      output: `incubator: results.json moduleWeights[2]: ${join(moved, "module-2.safetensors")} does not exist\n`,
    });

    const badConfig = join(dir, "bad-config");
    useFolder(badConfig, { ...results, config: { ...results.config, split: [3, 3] } });
    const bad = await evalStages(badConfig);
    expect(bad.code).toBe(1);
    expect(bad.output).toMatch(/^incubator: config\.split: .*\n$/);

    expect(await evalStages(diDir, "--limit", "0")).toEqual({
      code: 1,
      output: 'incubator: --limit: "0" is not a positive whole number\n',
    });
  }, 60_000);

  it("scores hybrids with width adapters from the module's checkpoint, where the module's weights leave them out", async () => {
    const narrow = join(dir, "narrow-meta");
    await incubate({ ...loadRunConfig("demo", [...SETS, "meta.width=32"]), outDir: narrow, threads: 1 });
    const stages = await evalStagesJson(narrow, "--limit", "32");
    expect(stages.stages.map((s) => s.stage)).toHaveLength(7);
    rmSync(join(narrow, "module-1.checkpoint.safetensors"));
    expect(await evalStages(narrow, "--limit", "32", "--json")).toEqual({
      code: 1,
      output: `incubator: hybrid-1: its width adapters are only in ${join(narrow, "module-1.checkpoint.safetensors")}, which does not exist\n`,
    });
  }, 120_000);

  it("scores an E2E run's final model only, as the run reported it", async () => {
    const e2eDir = join(dir, "e2e");
    const e2e = await trainEndToEnd({ ...config, outDir: e2eDir, threads: 1 });
    const stages = await evalStagesJson(e2eDir);
    expect(stages.kind).toBe("e2e");
    expect(stages.stages.map((s) => [s.stage, s.accuracy])).toEqual([["final", e2e.accuracy]]);
  }, 120_000);
});

/** A run folder holding only this results.json (or nothing). */
function useFolder(path: string, results?: object): void {
  mkdirSync(path, { recursive: true });
  if (results) writeFileSync(join(path, "results.json"), JSON.stringify(results));
}
