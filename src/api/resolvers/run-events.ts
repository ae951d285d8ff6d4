import { GraphQLError } from "graphql";
import type { SubscriptionResolvers } from "../../generated/graphql.ts";
import { canPush, PUSH, type Pushable } from "../../platform/events/event-hub.ts";
import type { RunEvent } from "../../platform/events/run-event.ts";
import type { ApiContext } from "../context.ts";
import { fromGlobalId } from "../global-id.ts";

interface RunEventsArgs {
  runId: string;
  afterSeq: number;
  moduleIndex?: number | null;
}

/**
 * The hub's stream as subscription payloads. Not an async generator: a generator suspended in
 * `await events.next()` queues `return()` behind it, so a closed socket would leave its hub
 * subscriber waiting for the run's next event (forever on a quiet run, and on shutdown until
 * the hub fails it, as an unhandled rejection). This forwards `return()` at once.
 * It also forwards the hub's push mode (event-hub.ts `PUSH`), which the fan-out uses.
 */
function asPayloads(
  events: AsyncIterableIterator<RunEvent>,
): AsyncIterableIterator<{ runEvents: RunEvent }> & Pushable<{ runEvents: RunEvent }> {
  const done = { value: undefined, done: true } as const;
  return {
    [PUSH](sink) {
      if (!canPush<RunEvent>(events)) return false;
      return events[PUSH]({
        next: (event) => sink.next({ runEvents: event }),
        end: (error) => sink.end(error),
        ...(sink.room ? { room: () => sink.room!() } : {}),
      });
    },
    async next() {
      const result = await events.next();
      return result.done ? done : { value: { runEvents: result.value }, done: false };
    },
    async return() {
      await events.return?.();
      return done;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

export const runEventsResolvers = {
  Subscription: {
    runEvents: {
      subscribe: async (_: unknown, args: RunEventsArgs, ctx: ApiContext) => {
        const runId = fromGlobalId("Run", args.runId, "runId");
        if (args.afterSeq < 0) {
          throw new GraphQLError("afterSeq must be 0 or the seq of an event you received", {
            extensions: { code: "BAD_USER_INPUT", argument: "afterSeq" },
          });
        }
        const run = await ctx.db.run.findUnique({ where: { id: runId }, select: { id: true } });
        if (!run) {
          throw new GraphQLError(`runId: no run with ID ${args.runId}`, {
            extensions: { code: "NOT_FOUND", argument: "runId" },
          });
        }
        return asPayloads(
          ctx.events.subscribe(runId, { afterSeq: args.afterSeq, moduleIndex: args.moduleIndex }),
        );
      },
    },
  },
} satisfies { Subscription: SubscriptionResolvers };
