/**
 * A job given `graphCacheDir` keeps its compiled graphs there, and a later job of the same
 * configuration (another seed) reads them instead of compiling, and trains exactly as a job
 * without the cache does. Real job, real files, real ORT sessions.
 */
import { readdirSync, statSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { type JobSpec, runJob } from "../../src/incubation/job.ts";
import { resolveRecipe } from "../../src/incubation/recipe.ts";
import { SMALL_SPLIT, SMALL_TARGET } from "../helpers/incubation.ts";
import { tinyOverrides } from "../helpers/tiny-run.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("job-graph-cache");
const cacheDir = join(dir, "graph-cache");
const DATA = { format: "synthetic", numClasses: 5, channels: 3, imageSize: 8, seed: 4, length: 64 } as const;

const spec = (outDir: string, seed: number, extra: Partial<JobSpec> = {}): JobSpec => ({
  phase: "e2e",
  target: SMALL_TARGET,
  split: SMALL_SPLIT,
  dataset: { ...DATA, split: "train" },
  recipe: resolveRecipe("deit", tinyOverrides({ pretrain: 2, modular: 2, finetune: 2, e2e: 3 })),
  seed,
  outDir: join(dir, outDir),
  threads: 1,
  ...extra,
});

const graphs = () =>
  readdirSync(cacheDir)
    .filter((n) => n.endsWith(".graph"))
    .sort()
    .map((n) => ({ name: n, ...statSync(join(cacheDir, n)) }));

describe("a job with a graph cache", () => {
  it("a later job of the same configuration reads the graphs and trains as an uncached job does", async () => {
    await runJob(spec("first", 1, { graphCacheDir: cacheDir }));
    const written = graphs();
    expect(written).toHaveLength(2); // the train step and the eval graph
    const old = new Date("2020-01-01T00:00:00Z");
    for (const g of written) utimesSync(join(cacheDir, g.name), old, old);

    const cached = await runJob(spec("second", 2, { graphCacheDir: cacheDir }));
    const after = graphs();
    // Read, not rewritten: the same files (same inodes), their use time refreshed.
    expect(after.map((g) => [g.name, g.ino])).toEqual(written.map((g) => [g.name, g.ino]));
    for (const g of after) expect(g.mtimeMs).toBeGreaterThan(old.getTime());

    const uncached = await runJob(spec("uncached", 2));
    const a = loadWeights(cached.weightsPath);
    const b = loadWeights(uncached.weightsPath);
    expect([...a.keys()]).toEqual([...b.keys()]);
    const bytes = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    for (const [name, v] of a) expect(bytes(v).equals(bytes(b.get(name)!)), name).toBe(true);
  }, 120_000);
});
