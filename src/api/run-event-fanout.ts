/**
 * One GraphQL execution and one serialised payload per run event for every subscriber that
 * would get the same bytes.
 *
 * graphql-ws executes a subscription's selection once per event per subscriber; 1,000 viewers of
 * one run cost 1,000 executions and 1,000 `JSON.stringify`s of the same result. Here the
 * `runEvents` subscription executes once per (event, sharing key):
 *
 * - the event is the hub's row object, shared by every subscriber of the run in this process
 *   (event-hub.ts reads each new row once), so a WeakMap on it holds the executions and lets
 *   them go with the row;
 * - the sharing key is what the result can depend on: the caller's authority (principal kind,
 *   role, projects — what field policies and project scoping look at), the document, the
 *   operation name and the variables used below the root field. `runEvents`' own arguments
 *   (runId, afterSeq, moduleIndex) choose which events a subscriber gets, not their bytes: the
 *   hub applies them per subscriber (its cursor and module filter), before sharing.
 *
 * The subscriber's own `subscribe` still runs for each subscription (policy, run visibility in
 * its projects, token re-checks), so who gets which run's events is unchanged. A shared result
 * with errors is not shared: each subscriber then executes with its own context, as before, so
 * no error text made under another caller's token reaches it.
 *
 * Every event a subscriber receives leaves through `deliver` below: the one delivery point.
 */
import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  type FieldNode,
  GraphQLError,
  getOperationAST,
  Kind,
  print,
  subscribe,
  visit,
} from "graphql";
import { SubscriberBehindError } from "../platform/events/event-hub.ts";
import type { RunEvent } from "../platform/events/run-event.ts";
import { projectScope } from "./auth/principal.ts";
import type { ApiContext } from "./context.ts";
import { PreSerialised } from "./ws-transport.ts";

/** The error code of a subscription ended because its consumer fell too far behind. */
export const RESUBSCRIBE_CODE = "RESUBSCRIBE_WITH_AFTER_SEQ";

/** What the fan-out costs, for `incubator bench events` and metrics. */
export interface FanoutStats {
  /** GraphQL executions of run events (shared ones count once). */
  executions: number;
  /** Milliseconds spent in them (execution + the one JSON.stringify). */
  executionMs: number;
  /** Events handed to subscribers. */
  deliveries: number;
  /** Subscriptions ended because their consumer fell behind. */
  behind: number;
}

export interface RunEventFanout {
  /** graphql-ws's `subscribe`: shared execution for `runEvents`, graphql-js's own for the rest. */
  subscribe(args: ExecutionArgs): Promise<AsyncIterable<ExecutionResult> | ExecutionResult>;
  readonly stats: FanoutStats;
}

type Source = { runEvents: RunEvent };

export function createRunEventFanout(): RunEventFanout {
  const stats: FanoutStats = { executions: 0, executionMs: 0, deliveries: 0, behind: 0 };
  const executions = new WeakMap<RunEvent, Map<string, Promise<ExecutionResult>>>();

  const executeOnce = (args: ExecutionArgs, source: Source): Promise<ExecutionResult> => {
    const started = performance.now();
    return Promise.resolve(execute({ ...args, rootValue: source })).then((result) => {
      stats.executions++;
      const shared = result.errors ? result : { data: new PreSerialised(JSON.stringify(result.data)) };
      stats.executionMs += performance.now() - started;
      return shared as ExecutionResult;
    });
  };

  /** The result for one subscriber: the shared one when there is one without errors. */
  const resultFor = async (args: ExecutionArgs, key: string, source: Source): Promise<ExecutionResult> => {
    const event = source.runEvents;
    let byKey = executions.get(event);
    if (!byKey) {
      byKey = new Map();
      executions.set(event, byKey);
    }
    let shared = byKey.get(key);
    if (!shared) {
      shared = executeOnce(args, source);
      byKey.set(key, shared);
    }
    const result = await shared;
    return result.errors ? executeOnce(args, source) : result;
  };

  /** The one place an event is handed to a subscriber (metrics go here). */
  const deliver = (result: ExecutionResult): IteratorResult<ExecutionResult> => {
    stats.deliveries++;
    return { value: result, done: false };
  };

  return {
    stats,
    async subscribe(args) {
      const key = sharingKey(args);
      if (key === null) return subscribe(args);
      const stream = await createSourceEventStream(args);
      if (!isAsyncIterable(stream)) return stream;
      const source = stream[Symbol.asyncIterator]() as AsyncIterator<Source>;
      const done = { value: undefined, done: true } as const;
      // Not an async generator: `return()` must reach the hub at once (see run-events.ts).
      const results: AsyncIterableIterator<ExecutionResult> = {
        async next() {
          let item: IteratorResult<Source>;
          try {
            item = await source.next();
          } catch (error) {
            throw asClientError(error, stats);
          }
          if (item.done) return done;
          return deliver(await resultFor(args, key, item.value));
        },
        async return() {
          await source.return?.();
          return done;
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
      return results;
    },
  };
}

/** A consumer that fell behind is told, with a code, where to resume; other errors pass as they are. */
function asClientError(error: unknown, stats: FanoutStats): unknown {
  if (!(error instanceof SubscriberBehindError)) return error;
  stats.behind++;
  return new GraphQLError(error.message, {
    extensions: { code: RESUBSCRIBE_CODE, resumeAfterSeq: error.resumeAfterSeq },
  });
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  typeof value === "object" && value !== null && Symbol.asyncIterator in value;

const printed = new WeakMap<DocumentNode, string>();

/**
 * What a `runEvents` result can depend on besides the event, or null for any other operation
 * (those run as graphql-js runs them).
 */
function sharingKey(args: ExecutionArgs): string | null {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== "subscription") return null;
  const [root, ...rest] = operation.selectionSet.selections;
  if (rest.length > 0 || root?.kind !== Kind.FIELD || root.name.value !== "runEvents") return null;
  const ctx = args.contextValue as ApiContext;
  let text = printed.get(args.document);
  if (text === undefined) {
    text = print(args.document);
    printed.set(args.document, text);
  }
  const variables = args.variableValues ?? {};
  const used = [...variablesBelow(root, args.document)].sort().map((name) => [name, variables[name]]);
  return JSON.stringify([authorityOf(ctx), args.operationName ?? null, text, used]);
}

/** Variables the selection under the root field (fragments included) refers to. */
function variablesBelow(root: FieldNode, document: DocumentNode): Set<string> {
  const names = new Set<string>();
  const collect = { Variable: (node: { name: { value: string } }) => void names.add(node.name.value) };
  if (root.selectionSet) visit(root.selectionSet, collect);
  for (const directive of root.directives ?? []) visit(directive, collect);
  for (const definition of document.definitions)
    if (definition.kind === Kind.FRAGMENT_DEFINITION) visit(definition, collect);
  return names;
}

/** What field policies and project scoping decide on (auth/policy.ts `decide`, auth/scope.ts). */
function authorityOf(ctx: ApiContext): unknown {
  const principal = ctx.principal;
  if (principal.kind === "api") return ["api", principal.token.role, projectScope(principal)];
  return [principal.kind];
}
