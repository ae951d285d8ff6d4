/**
 * Worker-thread side of TrainerThread: owns one Trainer and answers requests posted by the
 * main thread. ONNX Runtime's run() blocks the thread it runs on, so training here keeps the
 * main event loop (HTTP, GraphQL subscriptions, heartbeats) responsive.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Trainer, type TrainerArtifacts, type TrainerOptions } from "../train/trainer.ts";
import type { WorkerReply, WorkerRequest } from "./trainer-thread.ts";

const port = parentPort;
if (!port) throw new Error("trainer-worker.ts must run in a worker thread");

const { artifacts, options } = workerData as { artifacts: TrainerArtifacts; options: TrainerOptions };

async function handle(trainer: Trainer, req: WorkerRequest): Promise<unknown> {
  switch (req.method) {
    case "trainStep":
      return trainer.trainStep(req.args[0], req.args[1]);
    case "trainSteps":
      return trainer.trainSteps(req.args[0], req.args[1]);
    case "evaluate":
      return trainer.evaluate(req.args[0]);
    case "exportState":
      return trainer.exportState();
    case "importState":
      return trainer.importState(req.args[0]);
    case "parameters":
      return trainer.parameters();
    case "step":
      return trainer.step;
    case "release":
      return trainer.release();
  }
}

Trainer.create(artifacts, options).then(
  (trainer) => {
    // Requests are handled strictly in order: each run must see the previous step's parameters.
    let queue = Promise.resolve();
    port.on("message", (req: WorkerRequest) => {
      queue = queue.then(async () => {
        let reply: WorkerReply;
        try {
          reply = { id: req.id, ok: true, result: await handle(trainer, req) };
        } catch (e) {
          reply = { id: req.id, ok: false, error: e instanceof Error ? e.message : String(e) };
        }
        port.postMessage(reply);
      });
    });
    port.postMessage({ id: 0, ok: true, result: "ready" } satisfies WorkerReply);
  },
  (e: unknown) => port.postMessage({ id: 0, ok: false, error: e instanceof Error ? e.message : String(e) }),
);
