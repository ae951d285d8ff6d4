/** DataStats as GraphQL spells it: the cache outcome as an enum value ("filled-local" → FILLED_LOCAL). */
import type { DataStats } from "../../data/shard-cache.ts";

export function dataStatsOut(data: DataStats) {
  return { ...data, cache: data.cache.toUpperCase().replace("-", "_") };
}
