/**
 * The API plans `startRun(split: AUTO | BALANCED)` with the cost model in a worker thread: the
 * plan is the same as measuring in the caller's thread, and the caller's event loop keeps
 * turning meanwhile (compiling probes and opening ORT sessions inline blocks it for the length
 * of each compile — every request and live subscription of the API would wait).
 */
import { describe, expect, it } from "vitest";
import { loadRunConfig } from "../../src/incubation/config.ts";
import { planFromMeasurement } from "../../src/incubation/cost-model.ts";
import { planFromMeasurementInThread } from "../../src/incubation/cost-model-thread.ts";

/** The longest gap between 5 ms ticks of this thread's event loop while `work` runs. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ value: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    const value = await work();
    return { value, stallMs };
  } finally {
    clearInterval(tick);
  }
}

describe("planning in a worker thread", () => {
  // Wide enough that compiling one probe takes a while, small enough for a test.
  const config = loadRunConfig("demo", [
    "model.depth=4",
    "model.width=96",
    "model.heads=3",
    "recipe.batchSize=8",
    "threads=1",
  ]);
  const request = {
    target: config.target,
    recipe: config.recipe,
    threads: 1,
    timedSteps: 2,
    warmSteps: 1,
    modules: 2 as const,
  };

  it("returns a plan for the request and leaves the caller's event loop free", async () => {
    const threaded = await longestStall(() => planFromMeasurementInThread(request));
    const inline = await longestStall(() => planFromMeasurement(request));
    console.log(
      `longest stall: in a thread ${threaded.stallMs.toFixed(0)} ms, inline ${inline.stallMs.toFixed(0)} ms`,
    );
    expect(threaded.value.plan.split).toHaveLength(2);
    expect(threaded.value.plan.split.reduce((a, b) => a + b, 0)).toBe(4);
    expect(threaded.value.plan.predictedSeconds.every((s) => s > 0)).toBe(true);
    // Measured inline, the loop stalls for whole compiles; from a thread only for scheduling.
    expect(threaded.stallMs).toBeLessThan(inline.stallMs / 2);
  }, 300_000);

  it("measures the same request once, and reports a failure as an error", async () => {
    const a = planFromMeasurementInThread(request);
    const b = planFromMeasurementInThread(request);
    expect(await a).toBe(await b);
    await expect(
      planFromMeasurementInThread({ ...request, target: { ...request.target, heads: 5 } }),
    ).rejects.toThrow();
  }, 300_000);
});
