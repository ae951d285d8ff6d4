/**
 * TrainerThread: the Trainer API, running in a worker thread. Every method returns a promise and
 * the main thread's event loop stays free while steps run. Tensors are copied across the thread
 * boundary (structured clone); parameters stay in the worker between steps.
 */
import { Worker } from "node:worker_threads";
import type { Batch, EvalResult, StepResult, TrainerArtifacts, TrainerOptions } from "../train/trainer.ts";

interface Methods {
  trainStep: { args: [Batch, number]; result: StepResult };
  trainSteps: { args: [Batch[], number[]]; result: StepResult[] };
  evaluate: { args: [Batch]; result: EvalResult };
  exportState: { args: []; result: Map<string, Float32Array> };
  importState: { args: [Map<string, Float32Array>]; result: undefined };
  parameters: { args: []; result: Map<string, Float32Array> };
  step: { args: []; result: number };
  release: { args: []; result: undefined };
}
type MethodName = keyof Methods;

export type WorkerRequest = {
  [K in MethodName]: { id: number; method: K; args: Methods[K]["args"] };
}[MethodName];
export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string };

const ENTRY_URL = new URL("./worker-entry.mjs", import.meta.url);
// The worker module sits next to this one; in a source checkout that is a .ts file.
const WORKER_MODULE = new URL(
  `./trainer-worker${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`,
  import.meta.url,
);

export class TrainerThread {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on("message", (reply: WorkerReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new Error(reply.error));
    });
    const failAll = (err: Error) => {
      this.exited = err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on("error", failAll);
    worker.on("exit", (code) => failAll(new Error(`trainer thread exited (code ${code})`)));
  }

  /** Start a worker thread holding a Trainer built from `artifacts`; resolves once its sessions exist. */
  static start(artifacts: TrainerArtifacts, options: TrainerOptions = {}): Promise<TrainerThread> {
    const worker = new Worker(ENTRY_URL, { workerData: { entry: WORKER_MODULE.href, artifacts, options } });
    const thread = new TrainerThread(worker);
    return new Promise((resolve, reject) => {
      thread.pending.set(0, {
        resolve: () => resolve(thread),
        reject: (e) => {
          void worker.terminate();
          reject(e);
        },
      });
    });
  }

  private call<K extends MethodName>(method: K, ...args: Methods[K]["args"]): Promise<Methods[K]["result"]> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, method, args });
    });
  }

  trainStep(batch: Batch, lr: number): Promise<StepResult> {
    return this.call("trainStep", batch, lr);
  }
  trainSteps(batches: Batch[], lrs: number[]): Promise<StepResult[]> {
    return this.call("trainSteps", batches, lrs);
  }
  evaluate(batch: Batch): Promise<EvalResult> {
    return this.call("evaluate", batch);
  }
  exportState(): Promise<Map<string, Float32Array>> {
    return this.call("exportState");
  }
  async importState(state: Map<string, Float32Array>): Promise<void> {
    await this.call("importState", state);
  }
  parameters(): Promise<Map<string, Float32Array>> {
    return this.call("parameters");
  }
  step(): Promise<number> {
    return this.call("step");
  }

  /** Release the sessions and stop the thread. */
  async close(): Promise<void> {
    if (!this.exited) {
      await this.call("release");
      await this.worker.terminate();
    }
  }
}
