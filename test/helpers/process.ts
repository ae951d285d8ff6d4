/** Run the real `incubator` command as a child process. */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";

export const BIN = resolve(import.meta.dirname, "../../bin/incubator.js");

export interface Spawned {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  /** Resolves when the combined output matches `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/**
 * `env` adds to this process's environment; a variable set to undefined is removed. `cwd`: where
 * it runs (default this process's working directory). `wrap`: a command prefix that runs it
 * (e.g. inside a network namespace, `helpers/netns.ts`); it must exec, keeping the process id.
 */
export function spawnIncubator(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
  wrap: string[] = [],
): Spawned {
  const merged = Object.fromEntries(
    Object.entries({ ...process.env, ...env }).filter(([, value]) => value !== undefined),
  );
  const [command, ...prefix] = [...wrap, process.execPath];
  const child = spawn(command as string, [...prefix, BIN, ...args], {
    env: merged,
    ...(cwd ? { cwd } : {}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const waiters: { pattern: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const waiter of [...waiters]) {
      const match = output.match(waiter.pattern);
      if (match) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(match);
      }
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  return {
    child,
    output: () => output,
    exited,
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise((res, rej) => {
        const match = output.match(pattern);
        if (match) return res(match);
        const timer = setTimeout(
          () => rej(new Error(`timed out waiting for ${pattern}; output:\n${output}`)),
          timeoutMs,
        );
        waiters.push({
          pattern,
          resolve: (m) => {
            clearTimeout(timer);
            res(m);
          },
        });
        exited.then(() => {
          clearTimeout(timer);
          rej(new Error(`process exited before ${pattern}; output:\n${output}`));
        });
      }),
  };
}
