/**
 * Reading a job process's stdout: only well-formed JSON events reach the consumer; any other
 * line (plain text, a `{` line that is not JSON, a JSON line that is not an event) is handed
 * to `onOther` and never throws — it used to crash the worker with an uncaught SyntaxError.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { JobEvent } from "../../src/incubation/job.ts";
import { onJobEvents, parseJobEvent, spawnJobProcess } from "../../src/incubation/job-process.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("job-process");

describe("onJobEvents", () => {
  it("passes events on and every other line to onOther, without throwing, from a real child", async () => {
    const lines = [
      "plain text from a library",
      "{not json at all",
      '{"type":"progress","step":1,"totalSteps":4,"loss":2.3,"lr":0.001,"imagesPerSecond":10,"etaSeconds":3}',
      '{"type":"bogus"}',
      '{"type":"checkpoint","step":2}',
      '{"type":"toString"}',
      "[1, 2, 3]",
      '{"type":"checkpoint","step":2,"path":"/tmp/ckpt-2 ✓"}',
    ];
    // A fake `incubator` entry: the child prints the lines in awkward chunks (one split inside
    // the multi-byte ✓), and the final `done` event without a trailing newline.
    const bin = join(dir, "fake-incubator.mjs");
    const out = `${lines.join("\n")}\n{"type":"done","result":{"phase":"modular","steps":4}}`;
    const bytes = Buffer.from(out);
    const split = bytes.indexOf(Buffer.from("✓")) + 1;
    writeFileSync(
      bin,
      `const b = Buffer.from(${JSON.stringify(bytes.toString("base64"))}, "base64");
       process.stdout.write(b.subarray(0, 7));
       setTimeout(() => process.stdout.write(b.subarray(7, ${split})), 20);
       setTimeout(() => process.stdout.write(b.subarray(${split})), 40);`,
    );
    const child = spawnJobProcess(bin, "ignored");
    const events: JobEvent[] = [];
    const others: { line: string; problem: string | undefined }[] = [];
    onJobEvents(
      child.stdout,
      (e) => events.push(e),
      (line, problem) => others.push({ line, problem }),
    );
    const code = await new Promise((r) => child.on("close", r));
    expect(code).toBe(0);
    expect(events.map((e) => e.type)).toEqual(["progress", "checkpoint", "done"]);
    expect(events[1]).toMatchObject({ type: "checkpoint", step: 2, path: "/tmp/ckpt-2 ✓" });
    expect(others.map((o) => o.line)).toEqual([lines[0], lines[1], lines[3], lines[4], lines[5], lines[6]]);
    expect(others[0]!.problem).toBeUndefined();
    expect(others[1]!.problem).toMatch(/^not JSON/);
    expect(others[2]!.problem).toBe('unknown event type "bogus"');
    expect(others[3]!.problem).toBe('malformed "checkpoint" event');
    expect(others[4]!.problem).toBe('unknown event type "toString"');
    expect(others[5]!.problem).toBeUndefined(); // does not start with "{": plain output
  });

  it("checks the fields consumers read", () => {
    expect(parseJobEvent('{"type":"done"}')).toEqual({ problem: 'malformed "done" event' });
    expect(parseJobEvent("null")).toEqual({ problem: "not a JSON object" });
    expect(parseJobEvent('{"type":"eval","accuracy":0.5,"loss":null,"images":10}')).toHaveProperty("event");
    // JSON writes a NaN loss as null: still a progress event (the job fails on it by itself).
    expect(
      parseJobEvent(
        '{"type":"progress","step":3,"totalSteps":4,"loss":null,"lr":0,"imagesPerSecond":0,"etaSeconds":0}',
      ),
    ).toHaveProperty("event");
  });
});
