/**
 * Running a job in its own `incubator job` process — what `incubate --workers N` and platform
 * workers both do — and reading the JSON-line events it prints on stdout.
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable } from "node:stream";
import { trainingEnv } from "../engine/runtime/malloc-tuning.ts";
import type { JobEvent } from "./job.ts";

export type JobProcess = ChildProcessByStdio<null, Readable, Readable>;

/** `specArg` is the spec as JSON, or `@path` to a file holding it. */
export function spawnJobProcess(bin: string, specArg: string): JobProcess {
  return spawn(process.execPath, [bin, "job", "--spec", specArg], {
    stdio: ["ignore", "pipe", "pipe"],
    env: trainingEnv(), // glibc's huge pages: engine/runtime/malloc-tuning.ts
  });
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isNumber = (v: unknown) => typeof v === "number";

/**
 * The fields a consumer reads of each event type (worker.ts, job-lifecycle.ts, incubate.ts); a
 * line that lacks them is not an event. Losses may be null: JSON writes NaN as null.
 */
const EVENT_SHAPES: Record<JobEvent["type"], (e: Record<string, unknown>) => boolean> = {
  start: (e) => isNumber(e.totalSteps) && isNumber(e.startStep),
  progress: (e) => isNumber(e.step) && isNumber(e.totalSteps),
  checkpoint: (e) => isNumber(e.step) && typeof e.path === "string" && e.path !== "",
  eval: () => true,
  evalPoint: (e) => isNumber(e.step) && isNumber(e.seconds),
  done: (e) => isObject(e.result),
};

/** The event on `line`, or why it is not one. */
export function parseJobEvent(line: string): { event: JobEvent } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return { problem: `not JSON (${(error as Error).message})` };
  }
  if (!isObject(value)) return { problem: "not a JSON object" };
  const type = value.type;
  if (typeof type !== "string" || !Object.hasOwn(EVENT_SHAPES, type))
    return { problem: `unknown event type ${JSON.stringify(type)}` };
  if (!EVENT_SHAPES[type as JobEvent["type"]](value)) return { problem: `malformed "${type}" event` };
  return { event: value as unknown as JobEvent };
}

/**
 * Calls `onEvent` for every JSON event line on `stream`, in order. Any other line — plain text,
 * or one that starts with `{` but is not JSON or not a well-formed event — goes to `onOther`
 * (with the reason when it looked like an event) and never throws: a job's stray output must not
 * take its worker down.
 */
export function onJobEvents(
  stream: Readable,
  onEvent: (event: JobEvent) => void,
  onOther: (line: string, problem?: string) => void = () => {},
): void {
  const onLine = (line: string) => {
    if (!line.startsWith("{")) {
      if (line.trim()) onOther(line);
      return;
    }
    const parsed = parseJobEvent(line);
    if ("event" in parsed) onEvent(parsed.event);
    else onOther(line, parsed.problem);
  };
  let buffered = "";
  stream.setEncoding("utf8"); // a multi-byte character split across chunks stays whole
  stream.on("data", (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      onLine(line);
    }
  });
  stream.on("end", () => onLine(buffered)); // a last line without its newline
}
