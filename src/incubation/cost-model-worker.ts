/** The worker thread behind cost-model-thread.ts: measures, plans, posts the result, ends. */
import { parentPort, workerData } from "node:worker_threads";
import { planFromMeasurement } from "./cost-model.ts";
import type { PlanReply, PlanRequest } from "./cost-model-thread.ts";

const { request } = workerData as { request: PlanRequest };
let reply: PlanReply;
try {
  reply = { ok: true, ...(await planFromMeasurement(request)) };
} catch (error) {
  reply = { ok: false, error: error instanceof Error ? error.message : String(error) };
}
parentPort?.postMessage(reply);
