/**
 * `incubator worker --device`: a named provider that does not load stops the worker at start-up
 * with the reason; `auto` says which provider it chose. On these machines onnxruntime-node is
 * installed without its CUDA libraries (ONNXRUNTIME_NODE_INSTALL=skip) and there is no GPU, so
 * CUDA must fail; on a machine where the CUDA library is installed the failing cases are skipped.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { chooseDevice, missingLibraries, probeProvider } from "../../src/engine/runtime/device.ts";
import { ortBinaryDir } from "../../src/engine/runtime/providers.ts";
import { spawnIncubator } from "../helpers/process.ts";

const CUDA_LIB = join(ortBinaryDir(), "libonnxruntime_providers_cuda.so");
const cudaInstalled = existsSync(CUDA_LIB);
// Nothing listens on port 9 (discard) of loopback: a worker that got past the device check
// fails on the API instead, which the tests tell apart.
const NO_API = ["--api", "http://127.0.0.1:9/graphql", "--token", "inc_wt_unused"];

describe("worker --device", () => {
  it.skipIf(cudaInstalled)(
    "cuda without the provider library exits 1 naming the missing library and the install flag, before any API call",
    async () => {
      const proc = spawnIncubator(["worker", "--device", "cuda", ...NO_API], { LOG_LEVEL: "info" });
      expect(await proc.exited).toBe(1);
      const out = proc.output();
      expect(out).toMatch(/^incubator: ONNX Runtime CUDA provider is not installed: /);
      expect(out).toContain("libonnxruntime_providers_cuda.so is missing");
      expect(out).toContain("ONNXRUNTIME_NODE_INSTALL=cuda12");
      expect(out).not.toMatch(/cannot reach the API/);
    },
    60_000,
  );

  it.skipIf(cudaInstalled)(
    "auto without CUDA trains on the CPU and logs the choice with CUDA's reason",
    async () => {
      const proc = spawnIncubator(["worker", "--device", "auto", ...NO_API], { LOG_LEVEL: "info" });
      expect(await proc.exited).toBe(1); // the API is not there: the device step passed
      const out = proc.output();
      const choice = out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { msg: string; device?: string; requested?: string })
        .find((l) => l.requested === "auto");
      expect(choice?.device).toBe("cpu");
      expect(choice?.msg).toMatch(
        /^device auto → cpu: .*CUDA provider did not load .*libonnxruntime_providers_cuda\.so/,
      );
      expect(out).toMatch(/cannot reach the API at http:\/\/127\.0\.0\.1:9\/graphql/);
    },
    60_000,
  );

  it("an unknown device is refused with the list", async () => {
    const proc = spawnIncubator(["worker", "--device", "tpu", ...NO_API], {});
    expect(await proc.exited).toBe(1);
    expect(proc.output().trim()).toBe(
      'incubator: --device must be one of cpu, cuda, webgpu, auto, got "tpu"',
    );
  }, 60_000);
});

describe("probeProvider (a session created and run in a child process)", () => {
  it("cpu loads and runs", async () => {
    expect(await probeProvider("cpu")).toEqual({ ok: true });
  }, 60_000);

  it("a provider that fails inside ONNX Runtime comes back with ONNX Runtime's reason and how to fix it", async () => {
    // WebGPU is bundled in onnxruntime-node, so the library loads and session creation itself
    // fails on a machine without a GPU adapter; where an adapter exists the probe must pass.
    const probe = await probeProvider("webgpu");
    if (probe.ok) {
      expect((await chooseDevice("webgpu")).provider).toBe("webgpu");
      return;
    }
    expect(probe.reason).toMatch(/could not start the "webgpu" execution provider: .*adapter/i);
    expect(probe.reason).toMatch(/Vulkan/);
    await expect(chooseDevice("webgpu")).rejects.toThrow(/webgpu/);
  }, 120_000);
});

const hasToolchain = ["gcc", "ldd"].every((t) => spawnSync(t, ["--version"]).status === 0);

describe("missingLibraries (what ORT's 'Failed to load shared library' leaves out)", () => {
  it.skipIf(!hasToolchain)("names the libraries a shared library needs that the loader cannot find", () => {
    // A library linked against libneeded.so, which is then removed: ldd reports it "not found".
    const dir = mkdtempSync(join(tmpdir(), "ldd-"));
    try {
      writeFileSync(join(dir, "needed.c"), "int needed(void) { return 1; }\n");
      writeFileSync(join(dir, "provider.c"), "int needed(void); int provider(void) { return needed(); }\n");
      const cc = (...args: string[]) => expect(spawnSync("gcc", args, { cwd: dir }).status).toBe(0);
      cc("-shared", "-fPIC", "-o", "libneeded.so", "needed.c");
      cc("-shared", "-fPIC", "-o", "libprovider.so", "provider.c", "-L.", "-lneeded");
      rmSync(join(dir, "libneeded.so"));
      expect(missingLibraries(join(dir, "libprovider.so"))).toEqual(["libneeded.so"]);
      expect(missingLibraries(process.execPath)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
