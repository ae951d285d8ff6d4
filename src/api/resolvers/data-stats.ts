/** DataStats as GraphQL spells it: the cache outcome as an enum value ("filled-local" → FILLED_LOCAL). */
import type { DataStats } from "../../data/shard-cache.ts";
import type { DataCacheOutcome } from "../../generated/graphql.ts";

const CACHE_OUTCOME = {
  hit: "HIT",
  "filled-local": "FILLED_LOCAL",
  fetched: "FETCHED",
  off: "OFF",
} as const satisfies Record<DataStats["cache"], DataCacheOutcome>;

export function dataStatsOut(data: DataStats) {
  return { ...data, cache: CACHE_OUTCOME[data.cache] };
}
