/**
 * Running a job in its own `incubator job` process — what `incubate --workers N` and platform
 * workers both do — and reading the JSON-line events it prints on stdout.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import type { JobEvent } from "./job.ts";

export type JobProcess = ChildProcessByStdio<null, Readable, Readable>;

/** `specArg` is the spec as JSON, or `@path` to a file holding it. */
export function spawnJobProcess(bin: string, specArg: string): JobProcess {
  return spawn(process.execPath, [bin, "job", "--spec", specArg], { stdio: ["ignore", "pipe", "pipe"] });
}

/** Calls `onEvent` for every JSON event line on `stream`, in order; other lines are ignored. */
export function onJobEvents(stream: Readable, onEvent: (event: JobEvent) => void): void {
  let buffered = "";
  stream.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith("{")) onEvent(JSON.parse(line) as JobEvent);
    }
  });
}
