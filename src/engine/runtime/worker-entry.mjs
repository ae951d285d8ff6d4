// Plain-JS entry for engine worker threads. Source checkouts run TypeScript through tsx, but a
// worker inherits no in-process transformer (vitest, tsx's API), so when the real entry is a
// .ts file, register tsx's ESM hooks in this thread first, then load it.
import { workerData } from "node:worker_threads";

const entry = workerData.entry;
if (entry.endsWith(".ts")) {
  const { register } = await import("tsx/esm/api");
  register();
}
await import(entry);
