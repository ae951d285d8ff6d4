/**
 * What `incubator doctor` checks: each check is one small function returning a typed result.
 * A check fails only when the configuration asks for something that is missing (DATABASE_URL
 * unreachable, the artifact store unreachable, the requested execution provider not loading);
 * what is merely absent (a GPU on a CPU machine) is `off`.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { promisify } from "node:util";
import { probeProvider } from "../engine/runtime/device.ts";
import { EXECUTION_PROVIDERS, type ExecutionProvider } from "../engine/runtime/providers.ts";
import { openArtifactStore } from "../platform/artifacts/open.ts";
import { artifactStoreFromConfig, type Config } from "../platform/config/config.ts";
import { checkReachable, redactUrl } from "../platform/db/database.ts";
import { migrationStatus } from "../platform/db/migrate.ts";

/** ok: works; warn: works, but look; off: not here and not asked for; fail: asked for and missing. */
export const CHECK_STATUSES = ["ok", "warn", "off", "fail"] as const;
export type CheckStatus = (typeof CHECK_STATUSES)[number];

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
}

/** A provider that has not created a session by then is reported as not loading. */
const PROVIDER_TIMEOUT_MS = 20_000;

function packageVersionOf(name: string): string {
  const require = createRequire(import.meta.url);
  return (require(`${name}/package.json`) as { version: string }).version;
}

export function runtimeCheck(): CheckResult {
  return {
    check: "onnx runtime",
    status: "ok",
    detail: `onnxruntime-node ${packageVersionOf("onnxruntime-node")} on Node.js ${process.versions.node}`,
  };
}

export function threadsCheck(): CheckResult {
  return {
    check: "threads",
    status: "ok",
    detail: `${availableParallelism()} available to this process; a job's ONNX Runtime uses them all unless the worker's --threads says otherwise`,
  };
}

export const TRANSPARENT_HUGE_PAGES = "/sys/kernel/mm/transparent_hugepage/enabled";

/**
 * Training processes ask glibc for transparent huge pages (engine/runtime/malloc-tuning.ts); with
 * them off in the kernel every step maps its copies of the parameters and optimizer state anew.
 */
export function hugePagesCheck(path = TRANSPARENT_HUGE_PAGES): CheckResult {
  const check = "huge pages";
  let mode: string | undefined;
  try {
    mode = readFileSync(path, "utf8").match(/\[(\w+)\]/)?.[1];
  } catch {
    return {
      check,
      status: "off",
      detail: "no transparent huge pages on this system (not Linux, or no sysfs)",
    };
  }
  if (mode === "always" || mode === "madvise")
    return { check, status: "ok", detail: `transparent huge pages "${mode}": training processes use them` };
  return {
    check,
    status: "warn",
    detail:
      `transparent huge pages are "${mode ?? "unreadable"}": training steps run up to ~1.7× slower on wide models; ` +
      `as root: echo madvise > ${path}`,
  };
}

/** Whether `provider` really starts a session and runs a one-op graph here (device.ts's probe). */
export async function providerCheck(provider: ExecutionProvider, requested: boolean): Promise<CheckResult> {
  const check = `provider ${provider}`;
  const probe = await probeProvider(provider, PROVIDER_TIMEOUT_MS);
  if (probe.ok)
    return { check, status: "ok", detail: requested ? "loads and runs (requested)" : "loads and runs" };
  return {
    check,
    status: requested ? "fail" : "off",
    detail: `does not load${requested ? " but was requested" : ""}: ${probe.reason}`,
  };
}

export async function providerChecks(requested: ExecutionProvider): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const p of EXECUTION_PROVIDERS) results.push(await providerCheck(p, p === requested));
  return results;
}

export async function databaseCheck(config: Config): Promise<CheckResult[]> {
  if (!config.DATABASE_URL)
    return [
      {
        check: "database",
        status: "ok",
        detail: `DATABASE_URL unset: serve and demo start an embedded PostgreSQL under ${config.DATA_DIR} (workers elsewhere need --api or DATABASE_URL)`,
      },
    ];
  try {
    await checkReachable(config.DATABASE_URL);
  } catch (error) {
    return [{ check: "database", status: "fail", detail: (error as Error).message }];
  }
  const reachable: CheckResult = {
    check: "database",
    status: "ok",
    detail: `reachable at ${redactUrl(config.DATABASE_URL)}`,
  };
  try {
    const { applied, pending } = await migrationStatus(config.DATABASE_URL);
    return [
      reachable,
      pending.length === 0
        ? { check: "migrations", status: "ok", detail: `all ${applied} applied` }
        : {
            check: "migrations",
            status: "warn",
            detail: `${pending.length} not applied (${pending.join(", ")}); \`incubator serve\` applies them at start`,
          },
    ];
  } catch (error) {
    return [reachable, { check: "migrations", status: "fail", detail: (error as Error).message }];
  }
}

export async function artifactStoreCheck(config: Config): Promise<CheckResult> {
  const store = openArtifactStore(artifactStoreFromConfig(config));
  const kind = `ARTIFACT_STORE=${config.ARTIFACT_STORE}`;
  try {
    await store.check();
    return {
      check: "artifact store",
      status: "ok",
      detail: `${kind}: ${config.ARTIFACT_STORE === "s3" ? "bucket reachable" : "writable"} (${store.location})`,
    };
  } catch (error) {
    return { check: "artifact store", status: "fail", detail: `${kind}: ${(error as Error).message}` };
  }
}

/** The GPUs the NVIDIA driver reports, through nvidia-smi when it is installed. */
export async function gpuCheck(requested: ExecutionProvider): Promise<CheckResult> {
  try {
    const { stdout } = await promisify(execFile)(
      "nvidia-smi",
      ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
      { timeout: 20_000 },
    );
    const gpus = stdout.trim().split("\n").filter(Boolean);
    return { check: "gpu", status: "ok", detail: `${gpus.length} seen by the driver: ${gpus.join("; ")}` };
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    const why = missing
      ? "no NVIDIA driver here (nvidia-smi not found)"
      : `nvidia-smi failed: ${(error as Error).message}`;
    return { check: "gpu", status: requested === "cuda" ? "fail" : "off", detail: why };
  }
}

/** Every check, in the order the report shows them. */
export async function runChecks(config: Config, requested: ExecutionProvider): Promise<CheckResult[]> {
  return [
    runtimeCheck(),
    ...(await providerChecks(requested)),
    threadsCheck(),
    hugePagesCheck(),
    await gpuCheck(requested),
    ...(await databaseCheck(config)),
    await artifactStoreCheck(config),
  ];
}
