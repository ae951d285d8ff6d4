/**
 * A run's split: its own, when the split planner chose it at startRun (`split: BALANCED | AUTO`),
 * else its architecture's. Every reader of "how is this run divided" asks here.
 */
export function runSplit(
  run: { moduleSplit: readonly number[] },
  architecture: { moduleSplit: readonly number[] },
): number[] {
  return [...(run.moduleSplit.length > 0 ? run.moduleSplit : architecture.moduleSplit)];
}
