import { setTimeout as sleep } from "node:timers/promises";
import { GraphQLError } from "graphql";
import type { SubscriptionResolvers } from "../../generated/graphql.ts";

const MIN_INTERVAL_MS = 10;

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
        if (args.intervalMs < MIN_INTERVAL_MS) {
          throw new GraphQLError(`intervalMs must be at least ${MIN_INTERVAL_MS}`, {
            extensions: { code: "BAD_USER_INPUT", field: "intervalMs" },
          });
        }
        if (args.count != null && args.count < 1) {
          throw new GraphQLError("count must be at least 1 (or omitted for an endless stream)", {
            extensions: { code: "BAD_USER_INPUT", field: "count" },
          });
        }
        return ticks(args.intervalMs, args.count ?? null);
      },
    },
  },
} satisfies { Subscription: SubscriptionResolvers };
