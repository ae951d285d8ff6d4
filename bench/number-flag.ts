/**
 * `--name <n>` from a bench script's argv, or `fallback` when absent. The small scripts run with
 * `npx tsx` take their few flags this way; a value that is not a number stops the script with one
 * line naming the flag (exit 2) instead of running with NaN.
 */
export function numberFlag(args: readonly string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(args[i + 1]);
  if (args[i + 1] === undefined || !Number.isFinite(value)) {
    process.stderr.write(`--${name} takes a number, got "${args[i + 1] ?? ""}"\n`);
    process.exit(2);
  }
  return value;
}
