/**
 * A real (tiny) training job opening its shard through the machine's shard cache: the first job
 * reads the shard from the source, the next one with the same spec reads nothing, and both say
 * so in their `start` event and their result.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { type JobEvent, type JobSpec, runJob } from "../../src/incubation/job.ts";
import { tempDir, writeIdxSplit } from "../data/helpers.ts";

const root = tempDir("job-data");
const files = writeIdxSplit(join(root, "data"), { n: 256, h: 16, w: 16 });
const config = loadRunConfig("demo", [
  "model.channels=1",
  "model.depth=2",
  "model.width=32",
  "modules=2",
  "recipe.batchSize=16",
  "recipe.steps.pretrain=2",
]);

const spec = (outDir: string): JobSpec => ({
  phase: "pretrain",
  target: config.target,
  split: config.split,
  dataset: { format: "idx", path: join(root, "data"), shard: { count: 2, index: 1, seed: 0 } },
  recipe: config.recipe,
  seed: 1,
  outDir,
  threads: 1,
  dataCache: { dir: join(root, "shards") },
});

async function run(outDir: string) {
  const events: JobEvent[] = [];
  const result = await runJob(spec(outDir), { onEvent: (e) => events.push(e) });
  const start = events.find((e) => e.type === "start");
  return { result, start: start?.type === "start" ? start : undefined };
}

describe("a job with a shard cache", () => {
  it("reads its shard once; the next job with the same spec hits the cache and reads 0 source bytes", async () => {
    const first = await run(join(root, "job-1"));
    expect(first.start?.data).toMatchObject({ cache: "filled-local", records: 128 });
    expect(first.result.data).toEqual(first.start?.data);
    expect(first.result.bytesRead).toBe(first.result.data.bytesRead);
    expect(first.result.bytesRead).toBeGreaterThanOrEqual(128 * 16 * 16);
    expect(first.result.bytesRead).toBeLessThan(files.imagesBytes / 2 + files.labelsBytes + 64);

    const second = await run(join(root, "job-2"));
    expect(second.start?.data).toMatchObject({ cache: "hit", bytesRead: 0, records: 128 });
    expect(second.result.bytesRead).toBe(0);
    // Same data, same seed: the same training trajectory.
    expect(second.result.finalLoss).toBe(first.result.finalLoss);
  }, 120_000);
});
