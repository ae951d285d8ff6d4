/**
 * The split planner's measurement off the caller's event loop. Measuring compiles small real
 * hybrids and opens ORT sessions, which blocks the thread that does it for seconds (a minute or
 * more for a ViT-B): in the API process that would stall every request and live subscription
 * while one `startRun(split: AUTO)` is planned. So the API measures in a worker thread, one
 * measurement at a time per process (a burst of planned runs queues instead of multiplying the
 * CPU and memory), and keeps each result for the process's life like `measureCostModel` does.
 */
import { Worker } from "node:worker_threads";
import type { CostModel, MeasureOptions } from "./cost-model.ts";
import type { SplitPlan } from "./split-planner.ts";

export type PlanRequest = MeasureOptions & { modules: number | "auto" };
export type PlanReply = { ok: true; plan: SplitPlan; model: CostModel } | { ok: false; error: string };

const ENTRY_URL = new URL("../engine/runtime/worker-entry.mjs", import.meta.url);
// The worker module sits next to this one; in a source checkout that is a .ts file.
const WORKER_MODULE = new URL(
  `./cost-model-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`,
  import.meta.url,
);

const planned = new Map<string, Promise<{ plan: SplitPlan; model: CostModel }>>();
let queue: Promise<unknown> = Promise.resolve();

/** `planFromMeasurement`, measured in a worker thread; the same request is measured once. */
export function planFromMeasurementInThread(
  request: PlanRequest,
): Promise<{ plan: SplitPlan; model: CostModel }> {
  const key = JSON.stringify(request);
  let result = planned.get(key);
  if (!result) {
    result = queue.then(() => measureInThread(request));
    queue = result.catch(() => undefined);
    planned.set(key, result);
    result.catch(() => planned.delete(key));
  }
  return result;
}

function measureInThread(request: PlanRequest): Promise<{ plan: SplitPlan; model: CostModel }> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(ENTRY_URL, { workerData: { entry: WORKER_MODULE.href, request } });
    let settled = false;
    worker.once("message", (reply: PlanReply) => {
      settled = true;
      if (reply.ok) resolve({ plan: reply.plan, model: reply.model });
      else reject(new Error(reply.error));
      void worker.terminate();
    });
    worker.once("error", (error) => {
      settled = true;
      reject(error);
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new Error(`the split planner's measuring thread exited (code ${code})`));
    });
  });
}
