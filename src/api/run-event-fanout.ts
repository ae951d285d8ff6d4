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
 * **Delivery in one pass.** A subscription started by the WebSocket transport (ws-transport.ts,
 * `outletOf`) is not fed through graphql-ws's per-subscription loop (per delivery: an
 * async-iterator step at every layer, a Promise, `onNext`, a message `JSON.stringify`, a flush
 * callback). The hub pushes its events instead (event-hub.ts `PUSH`, forwarded by the resolver
 * and the token re-check), already filtered per subscriber (afterSeq cursor, moduleIndex,
 * replay then live), into its sharing group: per sharing key, the events waiting and, per
 * event, the subscriptions that take it. The group executes each event once and writes it to
 * all of them in one synchronous pass — each socket one corked write of a head frame made once
 * per subscription and the continuation frame made once per event. Per subscription, events are
 * written in seq order (a group works through its batches one after another, each in seq
 * order), and its end — `complete` after the run's terminal event, or an error — is settled
 * only after the events before it were written, so graphql-ws, which still owns the protocol,
 * sends `complete`/`error` after the data on the same socket. A subscription the client
 * completed, or whose socket closed, is skipped from that moment on.
 *
 * A direct write does not wait for the socket, so the backlog bound moves here: a subscription
 * whose socket still holds unsent bytes at each of `maxQueuedEvents` consecutive writes is cut
 * off with `RESUBSCRIBE_WITH_AFTER_SEQ`, resuming after the last event written to it (written
 * events precede the error on the socket, so the client has them all). Its events stay shared
 * buffers meanwhile (the socket keeps references, not copies), and others are never held up.
 *
 * Subscriptions that cannot push (not started by the transport) run as before: one shared
 * result per event through graphql-ws's loop, bounded by the hub's queue.
 *
 * Every event a subscriber receives leaves through `deliver` or a group's `write`: the two
 * delivery points.
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
import {
  canPush,
  DEFAULT_MAX_QUEUED_EVENTS,
  PUSH,
  type Pushable,
  REPLAY_PAGE_EVENTS,
  SubscriberBehindError,
} from "../platform/events/event-hub.ts";
import type { RunEvent } from "../platform/events/run-event.ts";
import { projectScope } from "./auth/principal.ts";
import type { ApiContext } from "./context.ts";
import { type Outlet, outletOf, PreSerialised } from "./ws-transport.ts";

/** The error code of a subscription ended because its consumer fell too far behind. */
export const RESUBSCRIBE_CODE = "RESUBSCRIBE_WITH_AFTER_SEQ";

/** What the fan-out costs, for `incubator bench events` and metrics. */
export interface FanoutStats {
  /** GraphQL executions of run events (shared ones count once). */
  executions: number;
  /** Milliseconds spent in them (execution + the one JSON.stringify). */
  executionMs: number;
  /** Events handed to subscribers (both paths). */
  deliveries: number;
  /** Of those, written directly in a group's pass (not through graphql-ws's loop). */
  directDeliveries: number;
  /** Subscriptions ended because their consumer fell behind. */
  behind: number;
}

export interface RunEventFanout {
  /** graphql-ws's `subscribe`: shared execution for `runEvents`, graphql-js's own for the rest. */
  subscribe(args: ExecutionArgs): Promise<AsyncIterable<ExecutionResult> | ExecutionResult>;
  readonly stats: FanoutStats;
}

type Source = { runEvents: RunEvent };

export interface RunEventFanoutOptions {
  /** Consecutive writes a subscription's socket may still hold unsent bytes at before it is cut off. */
  maxQueuedEvents?: number;
}

export function createRunEventFanout(options: RunEventFanoutOptions = {}): RunEventFanout {
  // As the hub's queue: a whole replay page is written in one pass, so the bound must hold one.
  const maxBehind = Math.max(options.maxQueuedEvents ?? DEFAULT_MAX_QUEUED_EVENTS, REPLAY_PAGE_EVENTS);
  const stats: FanoutStats = {
    executions: 0,
    executionMs: 0,
    deliveries: 0,
    directDeliveries: 0,
    behind: 0,
  };
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

  const groups = new Map<string, Group>();
  const groupFor = (key: string): Group => {
    let group = groups.get(key);
    if (!group) {
      const created = new Group(key, resultFor, executeOnce, stats, maxBehind, () => {
        if (groups.get(key) === created) groups.delete(key);
      });
      group = created;
      groups.set(key, group);
    }
    return group;
  };

  return {
    stats,
    async subscribe(args) {
      const key = sharingKey(args);
      if (key === null) return subscribe(args);
      const stream = await createSourceEventStream(args);
      if (!isAsyncIterable(stream)) return stream;
      const outlet = outletOf(args);
      if (outlet && canPush<Source>(stream)) {
        const pushed = groupFor(key).join(args, outlet, stream);
        if (pushed) return pushed;
      }
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

/** One subscription fed by its group: where it writes, and how its stream ends. */
interface Member {
  readonly args: ExecutionArgs;
  readonly outlet: Outlet;
  /** The seq of the last event written to it: where it resumes if cut off. */
  lastSeq: number;
  /** Consecutive writes at which its socket still held unsent bytes. */
  behind: number;
  /** Ended (done, failed, cut off) or returned by graphql-ws: nothing more is written. */
  ended: boolean;
  /** Settles graphql-ws's one `next()`: done, or the error it sends. */
  settle: (end: { error?: unknown }) => void;
  /** Stops the hub's stream (no `end` comes back). */
  stop: () => void;
}

/**
 * The subscriptions of one sharing key, and their events waiting to be written. Events arrive
 * from the hub synchronously per subscriber; a batch collects what arrived until the group's
 * next turn, then each event is executed once and written to its subscribers in one pass.
 */
class Group {
  /** Events waiting, each with the members that take it (insertion order; sorted by seq when written). */
  private pending = new Map<RunEvent, Member[]>();
  /** Members whose stream ended after the events now pending: settled once those are written. */
  private endings: { member: Member; error?: Error }[] = [];
  private running = false;
  private members = 0;
  /** Waiters for the group to have written everything pending (a replay's page pacing). */
  private idle: (() => void)[] = [];

  constructor(
    private readonly key: string,
    private readonly resultFor: (
      args: ExecutionArgs,
      key: string,
      source: Source,
    ) => Promise<ExecutionResult>,
    private readonly executeOnce: (args: ExecutionArgs, source: Source) => Promise<ExecutionResult>,
    private readonly stats: FanoutStats,
    private readonly maxBehind: number,
    private readonly onEmpty: () => void,
  ) {}

  /** graphql-ws's iterator for a pushed subscription: it yields nothing and ends when the stream does. */
  join(
    args: ExecutionArgs,
    outlet: Outlet,
    stream: AsyncIterable<unknown> & Pushable<Source>,
  ): AsyncIterableIterator<ExecutionResult> | null {
    const source = stream[Symbol.asyncIterator]() as AsyncIterator<Source>;
    let settled: { error?: unknown } | null = null;
    let wake: (() => void) | null = null;
    const member: Member = {
      args,
      outlet,
      lastSeq: 0,
      behind: 0,
      ended: false,
      settle: (end) => {
        if (settled) return;
        settled = end;
        wake?.();
      },
      stop: () => void Promise.resolve(source.return?.()).catch(() => {}),
    };
    const start = stream[PUSH]({
      next: (item) => this.add(item.runEvents, member),
      end: (error) => this.end(member, error),
      room: () => this.room(member),
    });
    if (start === false) {
      if (this.members === 0 && !this.running) this.onEmpty();
      return null;
    }
    member.lastSeq = start;
    this.members++;
    const done = { value: undefined, done: true } as const;
    const leave = () => {
      if (member.ended) return;
      member.ended = true;
      this.left();
    };
    return {
      next: async () => {
        if (!settled) await new Promise<void>((resolve) => (wake = resolve));
        leave();
        const end = settled as { error?: unknown };
        if (end.error !== undefined) throw asClientError(end.error, this.stats);
        return done;
      },
      // The client completed the operation, or its socket closed: write nothing more, stop the hub's stream.
      return: async () => {
        leave();
        member.stop();
        member.settle({});
        return done;
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  private left(): void {
    if (--this.members === 0 && !this.running) this.onEmpty();
  }

  private add(event: RunEvent, member: Member): void {
    const takers = this.pending.get(event);
    if (takers) takers.push(member);
    else this.pending.set(event, [member]);
    this.schedule();
  }

  private end(member: Member, error?: Error): void {
    this.endings.push(error ? { member, error } : { member });
    this.schedule();
  }

  /** Resolves once everything pending for `member` is written and its socket has taken it. */
  private async room(member: Member): Promise<void> {
    if (this.running || this.pending.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
    // ws has no drain event; a replay waits here only between pages of 1,000 events.
    while (!member.ended && member.outlet.open && member.outlet.bufferedAmount > 0)
      await new Promise((resolve) => setTimeout(resolve, 10));
  }

  private schedule(): void {
    if (this.running) return;
    this.running = true;
    // After the hub's synchronous hand-out: every subscriber's share of the batch is in.
    queueMicrotask(() => void this.run());
  }

  private async run(): Promise<void> {
    try {
      while (this.pending.size > 0 || this.endings.length > 0) {
        const batch = [...this.pending].sort((a, b) => a[0].seq - b[0].seq);
        const endings = this.endings;
        this.pending = new Map();
        this.endings = [];
        for (const [event, takers] of batch) await this.write(event, takers);
        for (const { member, error } of endings) member.settle(error ? { error } : {});
      }
    } finally {
      this.running = false;
      for (const resolve of this.idle.splice(0)) resolve();
      if (this.members === 0) this.onEmpty();
    }
  }

  /** One event to its takers: executed once, written in one pass. */
  private async write(event: RunEvent, takers: Member[]): Promise<void> {
    const live = takers.filter((m) => !m.ended);
    if (live.length === 0) return;
    const source: Source = { runEvents: event };
    let result: ExecutionResult;
    try {
      result = await this.resultFor(live[0]!.args, this.key, source);
    } catch (error) {
      for (const member of live) this.cutOff(member, error);
      return;
    }
    if (result.data instanceof PreSerialised) {
      const shared = result.data;
      for (const member of takers) {
        if (member.ended || !member.outlet.open) continue;
        // Unsent bytes at this write too: one more event behind; none: the consumer keeps up.
        if (member.outlet.bufferedAmount === 0) member.behind = 0;
        else if (++member.behind > this.maxBehind) {
          this.cutOff(member, new SubscriberBehindError(member.lastSeq, this.maxBehind));
          continue;
        }
        member.outlet.writeShared(shared);
        member.lastSeq = event.seq;
        this.stats.deliveries++;
        this.stats.directDeliveries++;
      }
      return;
    }
    // Not shareable (errors): each subscriber's own execution, through graphql-ws's `next`, in order.
    for (const member of takers) {
      if (member.ended || !member.outlet.open) continue;
      try {
        await member.outlet.next(member.args, await this.executeOnce(member.args, source));
        member.lastSeq = event.seq;
        this.stats.deliveries++;
      } catch (error) {
        this.cutOff(member, error);
      }
    }
  }

  /** End a member now (its later events are dropped): stop its stream, send the error. */
  private cutOff(member: Member, error: unknown): void {
    if (member.ended) return;
    member.stop();
    member.settle({ error });
    member.ended = true;
    this.left();
  }
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
