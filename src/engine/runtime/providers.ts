/**
 * Execution providers, and a clear error when one cannot load.
 *
 * onnxruntime-node 1.30 bundles the CPU and WebGPU providers. CUDA (and TensorRT) live in
 * separate shared libraries that the package's install script downloads — which fails on
 * offline machines, where installs use ONNXRUNTIME_NODE_INSTALL=skip. Without this check ORT's
 * own message is "Failed to load shared library", which does not say what to do.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import * as ort from "onnxruntime-node";

export type ExecutionProvider = "cpu" | "cuda" | "webgpu";
export const EXECUTION_PROVIDERS: readonly ExecutionProvider[] = ["cpu", "cuda", "webgpu"];

export class ProviderUnavailableError extends Error {
  constructor(
    readonly provider: ExecutionProvider,
    message: string,
  ) {
    super(message);
    this.name = "ProviderUnavailableError";
  }
}

const HOW_TO: Record<ExecutionProvider, string> = {
  cpu: "The CPU provider is part of onnxruntime-node; reinstall the package if it fails.",
  cuda:
    "Install onnxruntime-node with its CUDA libraries on a machine with network access: " +
    "`ONNXRUNTIME_NODE_INSTALL=cuda12 npm install onnxruntime-node` (needs CUDA 12 + cuDNN 9 on the " +
    "library path), or copy libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so " +
    "of the same ONNX Runtime version into the directory named above. Or choose provider 'cpu'.",
  webgpu:
    "The WebGPU provider is bundled but needs a GPU adapter: install a Vulkan loader and driver " +
    "(Debian: libvulkan1 plus the vendor's ICD). Or choose provider 'cpu'.",
};

/** Directory holding onnxruntime-node's native binding and provider libraries. */
export function ortBinaryDir(): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve("onnxruntime-node/package.json"));
  return join(pkg, "bin", "napi-v6", process.platform, process.arch);
}

/** Throws ProviderUnavailableError unless `provider` can plausibly load on this machine. */
export function assertProviderAvailable(provider: ExecutionProvider): void {
  if (!EXECUTION_PROVIDERS.includes(provider))
    throw new Error(
      `unknown execution provider "${provider}"; expected one of ${EXECUTION_PROVIDERS.join(", ")}`,
    );
  const known = ort.listSupportedBackends().find((b) => b.name === provider);
  if (!known)
    throw new ProviderUnavailableError(
      provider,
      `ONNX Runtime provider "${provider}" is not supported by this onnxruntime-node build. ${HOW_TO[provider]}`,
    );
  if (provider === "cuda") {
    const dir = ortBinaryDir();
    const lib = join(dir, "libonnxruntime_providers_cuda.so");
    if (!known.bundled && !existsSync(lib))
      throw new ProviderUnavailableError(
        provider,
        `ONNX Runtime CUDA provider is not installed: ${lib} is missing ` +
          `(onnxruntime-node was installed without its CUDA libraries, e.g. with ONNXRUNTIME_NODE_INSTALL=skip). ` +
          HOW_TO.cuda,
      );
  }
}

/** Wrap an ORT session-creation failure so it names the provider and how to get it. */
export function explainProviderFailure(provider: ExecutionProvider, cause: unknown): Error {
  if (provider === "cpu") return cause instanceof Error ? cause : new Error(String(cause));
  const err = new ProviderUnavailableError(
    provider,
    `ONNX Runtime could not start the "${provider}" execution provider: ${String(cause)}. ${HOW_TO[provider]}`,
  );
  (err as Error & { cause?: unknown }).cause = cause;
  return err;
}
