/**
 * Commands that train in their own process (`incubate`, `job`) want glibc's huge-page setting
 * (engine/runtime/malloc-tuning.ts), which only takes effect when a process starts. Started
 * without it, they run themselves once more with it and pass on signals and the exit status, so
 * to the caller it is the same command. Processes we spawn to train get it in their environment
 * and never come here twice.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { hasTrainingTunables, trainingEnv } from "../engine/runtime/malloc-tuning.ts";

const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Resolves only when this process already has the setting (or is not on Linux, or runs under a
 * debugger); otherwise it runs the same command line in a child with the setting and exits as
 * the child did.
 */
export async function ensureTrainingProcess(): Promise<void> {
  if (process.platform !== "linux" || hasTrainingTunables(process.env)) return;
  // Under a debugger the work must stay in this process (a child would also want the inspector port).
  if (process.execArgv.some((a) => a.startsWith("--inspect"))) return;
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: trainingEnv(process.env),
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED) process.on(signal, forward);
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  for (const s of FORWARDED) process.off(s, forward);
  if (signal) process.kill(process.pid, signal);
  process.exit(code ?? 1);
}
