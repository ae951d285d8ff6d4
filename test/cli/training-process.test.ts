/**
 * Commands that train in their own process run with glibc's huge-page setting
 * (engine/runtime/malloc-tuning.ts): job processes get it in their environment; `train`,
 * `incubate` and `job` started without it run themselves once more with it, and the caller
 * still sees one command — its output once, its exit status, its response to signals.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  defaultMallocEnv,
  hasTrainingTunables,
  TRAINING_TUNABLE,
  trainingEnv,
} from "../../src/engine/runtime/malloc-tuning.ts";
import { spawnJobProcess } from "../../src/incubation/job-process.ts";
import { spawnIncubator } from "../helpers/process.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("training-process");

/** Children of a process, from /proc (Linux). */
function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return text ? text.split(" ").map(Number) : [];
}
const environOf = (pid: number) => readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("the training environment", () => {
  it("adds the tunable to a user's other glibc tunables and leaves a user's own huge-page choice alone", () => {
    expect(trainingEnv({}).GLIBC_TUNABLES).toBe(TRAINING_TUNABLE);
    expect(trainingEnv({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }).GLIBC_TUNABLES).toBe(
      `glibc.malloc.arena_max=2:${TRAINING_TUNABLE}`,
    );
    expect(trainingEnv({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=0" }).GLIBC_TUNABLES).toBe(
      "glibc.malloc.hugetlb=0",
    );
    expect(hasTrainingTunables({ GLIBC_TUNABLES: "glibc.malloc.hugetlb=2" })).toBe(true);
    expect(hasTrainingTunables({ GLIBC_TUNABLES: "glibc.malloc.hugetlbx=1" })).toBe(false);
    expect(defaultMallocEnv({ GLIBC_TUNABLES: `a=1:${TRAINING_TUNABLE}` }).GLIBC_TUNABLES).toBe("a=1");
    expect("GLIBC_TUNABLES" in defaultMallocEnv({ GLIBC_TUNABLES: TRAINING_TUNABLE })).toBe(false);
  });

  it("a job process starts with it", async () => {
    const bin = join(dir, "print-env.mjs");
    writeFileSync(bin, "process.stdout.write(process.env.GLIBC_TUNABLES ?? '');");
    const child = spawnJobProcess(bin, "ignored");
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c;
    });
    expect(await new Promise((r) => child.on("close", r))).toBe(0);
    expect(out.split(":")).toContain(TRAINING_TUNABLE);
  });
});

describe("a training command started without it", () => {
  it("reports a bad spec once and exits 1", async () => {
    const proc = spawnIncubator(["job", "--spec", "{not json"], { GLIBC_TUNABLES: undefined });
    expect(await proc.exited).toBe(1);
    const lines = proc.output().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/JSON/);
  });

  it("trains in a child that has the tunable, and SIGTERM to the command stops both", async () => {
    const proc = spawnIncubator(
      [
        "train",
        "--config",
        "demo",
        "--set",
        "recipe.steps.e2e=100000",
        "--out",
        join(dir, "train-run"),
        "--json",
      ],
      { GLIBC_TUNABLES: undefined },
    );
    await proc.waitFor(/"type":"progress"/, 120_000);
    const parent = proc.child.pid!;
    const [trainer] = childrenOf(parent);
    expect(trainer).toBeDefined();
    expect(environOf(parent).some((v) => v.startsWith("GLIBC_TUNABLES="))).toBe(false);
    expect(environOf(trainer!)).toContain(`GLIBC_TUNABLES=${TRAINING_TUNABLE}`);
    proc.child.kill("SIGTERM");
    await proc.exited;
    const deadline = Date.now() + 10_000;
    while (alive(trainer!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(trainer!)).toBe(false);
  });
});
