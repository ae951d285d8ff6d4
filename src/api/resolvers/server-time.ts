import { setTimeout as sleep } from "node:timers/promises";
import { GraphQLError } from "graphql";
import type { SubscriptionResolvers } from "../../generated/graphql.ts";
import { SERVER_TIME_LIMITS } from "../../platform/limits.ts";

const { minIntervalMs, maxIntervalMs, maxCount } = SERVER_TIME_LIMITS;

async function* ticks(intervalMs: number, count: number | null) {
  for (let tick = 1; count === null || tick <= count; tick++) {
    yield { serverTime: { tick, time: new Date().toISOString() } };
    if (count !== null && tick === count) return;
    await sleep(intervalMs);
  }
}

export const serverTimeResolvers = {
  Subscription: {
    serverTime: {
      subscribe: (_: unknown, args: { intervalMs: number; count?: number | null }) => {
        if (args.intervalMs < minIntervalMs || args.intervalMs > maxIntervalMs) {
          const bound =
            args.intervalMs < minIntervalMs ? `at least ${minIntervalMs}` : `at most ${maxIntervalMs}`;
          throw new GraphQLError(`intervalMs must be ${bound}`, {
            extensions: { code: "BAD_USER_INPUT", field: "intervalMs", argument: "intervalMs" },
          });
        }
        if (args.count != null && (args.count < 1 || args.count > maxCount)) {
          throw new GraphQLError(
            `count must be between 1 and ${maxCount} (or omitted for an endless stream)`,
            {
              extensions: { code: "BAD_USER_INPUT", field: "count", argument: "count" },
            },
          );
        }
        return ticks(args.intervalMs, args.count ?? null);
      },
    },
  },
} satisfies { Subscription: SubscriptionResolvers };
