/**
 * workers/incubator-worker@.service: `systemd-analyze verify` finds no unknown key, bad value or
 * missing executable (skipped with a message where systemd-analyze is missing). Not started:
 * this machine is no GPU host.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SYSTEMD_UNIT, unitSettings } from "./deploy-files.ts";

const hasAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
if (!hasAnalyze) console.warn("systemd-analyze not found: skipping the unit file check (Debian: systemd)");

/** Verify an instance of the template (systemd verifies instances, not templates). */
function verify(unitText?: string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), "unit-"));
  const path = join(dir, "incubator-worker@0.service");
  if (unitText === undefined) copyFileSync(SYSTEMD_UNIT, path);
  else writeFileSync(path, unitText);
  const result = spawnSync("systemd-analyze", ["verify", "--man=no", path], { encoding: "utf8" });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

describe("workers/incubator-worker@.service", () => {
  it.skipIf(!hasAnalyze)("systemd-analyze verify reports nothing", () => {
    expect(verify()).toEqual({ status: 0, output: "" });
  });

  it.skipIf(!hasAnalyze)("systemd-analyze verify reports an unknown key (the check can fail)", () => {
    const { output } = verify("[Service]\nExecStart=/bin/true\nKillMod=mixed\n");
    expect(output).toMatch(/Unknown key 'KillMod'/);
  });

  it("one GPU per instance, SIGTERM to the worker only, the env file, restart on failure", () => {
    const settings = new Map<string, string[]>();
    for (const [k, v] of unitSettings()) settings.set(k, [...(settings.get(k) ?? []), v]);
    expect(settings.get("Environment")).toContain("CUDA_VISIBLE_DEVICES=%i");
    expect(settings.get("KillMode")).toEqual(["mixed"]);
    expect(settings.get("EnvironmentFile")).toEqual(["/etc/incubator/worker.env"]);
    expect(settings.get("Restart")).toEqual(["on-failure"]);
    expect(settings.get("User")).toEqual(["incubator"]);
  });
});
