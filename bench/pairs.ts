/**
 * Alternating A/B measurement: on a machine shared with other work, a single run of each side
 * says little (the load moves by 2× within minutes). Running A B A B …, each in its own process,
 * and taking the median of the per-pair ratios cancels slow drift; the min–max of those ratios
 * shows how much noise is left. The load average at start and end is kept with the figures.
 */
import { execFileSync } from "node:child_process";
import { cpus, loadavg } from "node:os";

/** What one side of a pair reports. */
export interface SideRun {
  steps_per_s: number;
  peak_rss_mb: number;
}

export interface Pair<A extends SideRun, B extends SideRun> {
  a: A;
  b: B;
}

/** Runs `a` then `b`, `n` times; `onPair` sees each pair as it completes. */
export function alternate<A extends SideRun, B extends SideRun>(
  n: number,
  a: () => A,
  b: () => B,
  onPair?: (pair: Pair<A, B>, index: number) => void,
): Pair<A, B>[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--pairs must be a positive whole number, got ${n}`);
  const pairs: Pair<A, B>[] = [];
  for (let i = 0; i < n; i++) {
    const pair = { a: a(), b: b() };
    pairs.push(pair);
    onPair?.(pair, i);
  }
  return pairs;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** Median (mean of the middle two for an even count), min and max. */
export function spread(values: number[]): Spread {
  if (!values.length) throw new Error("spread of no values");
  const s = [...values].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s.at(-1)! };
}

export const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Per-pair ratios num/den of speed and of peak RSS, summarised. */
export function pairRatios<A extends SideRun, B extends SideRun>(
  pairs: Pair<A, B>[],
  numerator: "a" | "b",
): { speed: Spread; rss: Spread } {
  const den = numerator === "a" ? "b" : "a";
  return {
    speed: spread(pairs.map((p) => p[numerator].steps_per_s / p[den].steps_per_s)),
    rss: spread(pairs.map((p) => p[numerator].peak_rss_mb / p[den].peak_rss_mb)),
  };
}

/** Machine, date, commit: what every recorded figure needs next to it. */
export interface RunContext {
  machine: string;
  node: string;
  date: string;
  commit: string;
  loadavg_1m_start: number;
  loadavg_1m_end?: number;
}

export function runContext(): RunContext {
  return {
    machine: `${cpus()[0]?.model ?? "?"} × ${cpus().length}`,
    node: process.version,
    date: new Date().toISOString(),
    commit: gitCommit(),
    loadavg_1m_start: round3(loadavg()[0]!),
  };
}

export const endLoad = () => round3(loadavg()[0]!);

/** Short commit, with "-dirty" when tracked files differ from it; "unknown" outside a checkout. */
function gitCommit(): string {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const head = git("rev-parse", "--short", "HEAD");
    return git("status", "--porcelain", "--untracked-files=no") ? `${head}-dirty` : head;
  } catch {
    return "unknown";
  }
}
