/**
 * Which execution provider a worker trains on. `--device cpu|cuda|webgpu` asks for one provider
 * and fails at start-up, with the reason, when it does not load here; `--device auto` takes CUDA
 * when it loads and otherwise CPU — and always says which it chose and why, so a GPU host that
 * quietly trains on its CPU shows up in the first log line, not in a week's wait.
 *
 * A provider "loads" when a one-node session created on it runs: that is the only test that
 * catches every way it can fail (library missing, CUDA/cuDNN libraries missing or of another
 * major version, no driver, no adapter). The probe runs in a child process (provider-probe.mjs),
 * so a crash or a resident CUDA context stays out of the worker process.
 */
import { spawn, spawnSync } from "node:child_process";
import { join, resolve } from "node:path";
import { GraphBuilder } from "../ir/builder.ts";
import { toOnnxModel } from "../onnx/serialize.ts";
import {
  assertProviderAvailable,
  EXECUTION_PROVIDERS,
  type ExecutionProvider,
  explainProviderFailure,
  ortBinaryDir,
  ProviderUnavailableError,
} from "./providers.ts";

/** What `--device` accepts: a provider, or `auto` (CUDA when it loads, else CPU, said aloud). */
export type DeviceRequest = ExecutionProvider | "auto";
export const DEVICE_REQUESTS: readonly DeviceRequest[] = [...EXECUTION_PROVIDERS, "auto"];

export type ProbeResult = { ok: true } | { ok: false; reason: string };

const PROBE_SCRIPT = resolve(import.meta.dirname, "provider-probe.mjs");
/** Creating a CUDA context and loading cuDNN can take a while on a cold machine. */
const PROBE_TIMEOUT_MS = 120_000;

/** y = x + x on a float vector: the smallest graph that makes the provider place and run a kernel. */
function probeModel(): Uint8Array {
  const b = new GraphBuilder("provider_probe");
  const x = b.input("x", "float32", [4]);
  b.output("y", b.add(x, x));
  return toOnnxModel(b.graph);
}

/**
 * Whether `provider` loads and runs on this machine, and if not, ONNX Runtime's reason (also
 * `incubator doctor`'s provider check). A probe still running after `timeoutMs` counts as not loading.
 */
export async function probeProvider(
  provider: ExecutionProvider,
  timeoutMs = PROBE_TIMEOUT_MS,
): Promise<ProbeResult> {
  try {
    assertProviderAvailable(provider);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  const child = spawn(process.execPath, [PROBE_SCRIPT, provider], {
    stdio: ["pipe", "pipe", "pipe"],
    timeout: timeoutMs,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin.end(probeModel());
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
    child.on("error", fail);
    child.on("close", (c, s) => done([c, s]));
  });
  const line = stdout.trim().split("\n").at(-1) ?? "";
  try {
    const answer = JSON.parse(line) as { ok: boolean; error?: string };
    if (answer.ok) return { ok: true };
    return {
      ok: false,
      reason: withMissingLibraries(provider, explainProviderFailure(provider, answer.error).message),
    };
  } catch {
    const how = signal
      ? `was stopped by ${signal}${signal === "SIGTERM" ? ` (no session after ${timeoutMs / 1000} s)` : ""}`
      : `exited with code ${code}`;
    const said = stderr.trim().split("\n").slice(-3).join(" ").slice(0, 500);
    return {
      ok: false,
      reason: explainProviderFailure(provider, `the probe process ${how}${said ? `: ${said}` : ""}`).message,
    };
  }
}

/**
 * Shared libraries `library` needs that the dynamic loader does not find (ldd's "not found"), or
 * [] when all are found or ldd is not there. ONNX Runtime says only "Failed to load shared
 * library" when the CUDA provider's own dependencies (cuBLAS, cuRAND, the driver's libcuda) are
 * missing; this names them.
 */
export function missingLibraries(library: string): string[] {
  const ldd = spawnSync("ldd", [library], { encoding: "utf8" });
  if (ldd.error || ldd.status !== 0) return [];
  return [...ldd.stdout.matchAll(/^\s*(\S+) => not found/gm)].map((m) => m[1]!);
}

/** The probe's reason, plus the CUDA provider's missing libraries when ORT did not say them. */
function withMissingLibraries(provider: ExecutionProvider, reason: string): string {
  if (provider !== "cuda" || !/failed to load shared library/i.test(reason)) return reason;
  const missing = missingLibraries(join(ortBinaryDir(), "libonnxruntime_providers_cuda.so"));
  if (!missing.length) return reason;
  return `${reason} The CUDA provider library needs ${missing.join(", ")}, which the dynamic loader does not find: install them (CUDA runtime, cuBLAS, cuRAND, cuDNN; libcuda.so.1 comes with the NVIDIA driver) or put their folders on LD_LIBRARY_PATH.`;
}

export interface DeviceChoice {
  provider: ExecutionProvider;
  /** One sentence for the log: what was asked, what was chosen, and why. */
  note: string;
}

/**
 * The provider to train on for `--device <request>`. A named provider that does not load throws
 * (ProviderUnavailableError, naming the provider, the reason and how to get it); `auto` never
 * throws for CUDA's sake and says which provider it chose.
 */
export async function chooseDevice(request: DeviceRequest): Promise<DeviceChoice> {
  if (!DEVICE_REQUESTS.includes(request))
    throw new Error(`--device must be one of ${DEVICE_REQUESTS.join(", ")}, got "${request}"`);
  if (request === "cpu") return { provider: "cpu", note: "device cpu: ONNX Runtime CPU provider" };
  if (request === "auto") {
    const cuda = await probeProvider("cuda");
    if (cuda.ok) return { provider: "cuda", note: "device auto → cuda: the CUDA provider loaded and ran" };
    return {
      provider: "cpu",
      note: `device auto → cpu: training on the CPU because the CUDA provider did not load (${cuda.reason})`,
    };
  }
  const probe = await probeProvider(request);
  if (!probe.ok) {
    // The probe's reason already names the provider and how to get it.
    throw new ProviderUnavailableError(request, probe.reason);
  }
  return { provider: request, note: `device ${request}: the ${request} provider loaded and ran` };
}
