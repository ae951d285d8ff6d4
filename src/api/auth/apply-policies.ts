/**
 * The policy table applied to the schema: every root field's resolver (and a subscription's
 * `subscribe`) is wrapped with its entry in policy.ts, in one place. A root field without an
 * entry, or an entry without a field, stops start-up. Subscriptions re-check their token while
 * they are open: one whose token is revoked or expires ends with an error (FORBIDDEN or
 * UNAUTHENTICATED), not a quiet `complete`.
 */
import {
  defaultFieldResolver,
  GraphQLError,
  type GraphQLFieldResolver,
  type GraphQLObjectType,
  type GraphQLSchema,
} from "graphql";
import { canPush, PUSH, type Pushable, type RunEventSink } from "../../platform/events/event-hub.ts";
import type { ApiContext } from "../context.ts";
import { decide, FIELD_POLICIES, type Policy, type RootType, TYPE_POLICIES } from "./policy.ts";
import { type Refusal, recheck } from "./principal.ts";

/** How often an open subscription re-checks its token (tests shorten it). */
export const DEFAULT_RECHECK_MS = 5_000;

export const refusalError = (refusal: Refusal) =>
  new GraphQLError(refusal.message, {
    extensions: { code: refusal.code, http: { status: refusal.code === "FORBIDDEN" ? 403 : 401 } },
  });

function enforce(policy: Policy, ctx: ApiContext, what: string): void {
  const refusal = decide(policy, ctx.principal, what);
  if (refusal) throw refusalError(refusal);
}

/** The root types' fields that have no policy, and policies that name no field (both must be empty). */
export function policyGaps(schema: GraphQLSchema, table = FIELD_POLICIES): string[] {
  const gaps: string[] = [];
  for (const rootName of ["Query", "Mutation", "Subscription"] as const) {
    const type = rootType(schema, rootName);
    const fields = Object.keys(type?.getFields() ?? {});
    for (const field of fields)
      if (!table[rootName][field]) gaps.push(`${rootName}.${field} has no policy in src/api/auth/policy.ts`);
    for (const field of Object.keys(table[rootName]))
      if (!fields.includes(field))
        gaps.push(`src/api/auth/policy.ts names ${rootName}.${field}, which schema.graphql lacks`);
  }
  return gaps;
}

function rootType(schema: GraphQLSchema, name: RootType): GraphQLObjectType | null | undefined {
  if (name === "Query") return schema.getQueryType();
  if (name === "Mutation") return schema.getMutationType();
  return schema.getSubscriptionType();
}

export function applyFieldPolicies(
  schema: GraphQLSchema,
  options: { recheckMs?: number } = {},
): GraphQLSchema {
  const gaps = policyGaps(schema);
  if (gaps.length) throw new Error(`authorization: ${gaps.join("; ")}`);
  const recheckMs = options.recheckMs ?? DEFAULT_RECHECK_MS;
  const recheckShared = sharedRecheck(recheckMs);
  for (const rootName of ["Query", "Mutation", "Subscription"] as const) {
    for (const [name, field] of Object.entries(rootType(schema, rootName)?.getFields() ?? {})) {
      const policy = FIELD_POLICIES[rootName][name]!;
      const what = `${rootName}.${name}`;
      if (rootName === "Subscription") {
        const subscribe = field.subscribe ?? defaultFieldResolver;
        field.subscribe = async (source, args, ctx: ApiContext, info) => {
          enforce(policy, ctx, what);
          const stream = await subscribe(source, args, ctx, info);
          if (!isAsyncIterable(stream)) return stream;
          return whileAuthorized(stream, () => recheckShared(ctx), recheckMs);
        };
        continue;
      }
      const resolve: GraphQLFieldResolver<unknown, ApiContext> = field.resolve ?? defaultFieldResolver;
      field.resolve = (source, args, ctx: ApiContext, info) => {
        enforce(policy, ctx, what);
        return resolve(source, args, ctx, info);
      };
    }
  }
  for (const [typeName, policy] of Object.entries(TYPE_POLICIES)) {
    const type = schema.getType(typeName) as GraphQLObjectType | undefined;
    if (!type)
      throw new Error(
        `authorization: src/api/auth/policy.ts names type ${typeName}, which schema.graphql lacks`,
      );
    for (const [name, field] of Object.entries(type.getFields())) {
      const resolve: GraphQLFieldResolver<unknown, ApiContext> = field.resolve ?? defaultFieldResolver;
      field.resolve = (source, args, ctx: ApiContext, info) => {
        enforce(policy, ctx, `${typeName}.${name}`);
        return resolve(source, args, ctx, info);
      };
    }
  }
  return schema;
}

/**
 * One token re-check per token and half interval, however many subscriptions it holds open: a
 * dashboard's 1,000 subscriptions on one token would otherwise query the database 200 times a
 * second, competing with the event reads. A revocation is still seen within one interval.
 */
function sharedRecheck(everyMs: number): (ctx: ApiContext) => Promise<Refusal | null> {
  const recent = new Map<string, { at: number; result: Promise<Refusal | null> }>();
  return (ctx) => {
    const principal = ctx.principal;
    const key =
      principal.kind === "api" || principal.kind === "worker"
        ? `${principal.kind}:${principal.token.id}`
        : null;
    if (key === null) return recheck(ctx.db, principal);
    const now = performance.now();
    const hit = recent.get(key);
    if (hit && now - hit.at < everyMs / 2) return hit.result;
    if (recent.size > 10_000) {
      for (const [k, v] of recent) if (now - v.at >= everyMs / 2) recent.delete(k);
    }
    const result = recheck(ctx.db, principal);
    recent.set(key, { at: now, result });
    result.catch(() => recent.delete(key));
    return result;
  };
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<unknown> =>
  typeof value === "object" && value !== null && Symbol.asyncIterator in value;

/**
 * `stream`'s items for as long as `check` finds nothing wrong (checked every `everyMs`); then
 * the iteration throws the refusal, which graphql-ws sends as the subscription's `error`.
 *
 * A refusal ends the source (`return()`), which settles a `next()` waiting on a quiet run, and
 * the refusal is thrown in its place. (Racing every `next()` against one long-lived "refused"
 * promise would leave a reaction on it per event — memory that grows with events × subscribers
 * until the subscription ends, and the GC pauses that come with it.)
 */
export function whileAuthorized<T>(
  stream: AsyncIterable<T>,
  check: () => Promise<Refusal | null>,
  everyMs: number,
): AsyncIterableIterator<T> & Pushable<T> {
  const source = stream[Symbol.asyncIterator]();
  let refusal: GraphQLError | null = null;
  let checking = false;
  const timer = setInterval(() => {
    if (checking || refusal) return;
    checking = true;
    check()
      .then((found) => {
        if (!found || refusal) return;
        refusal = refusalError(found);
        stop();
        sink?.end(refusal);
      })
      .catch(() => {}) // a database hiccup is not a revocation; the next tick checks again
      .finally(() => {
        checking = false;
      });
  }, everyMs);
  timer.unref();
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    // Not awaited: the hub settles a waiting next() at once; nothing to wait for here.
    void Promise.resolve(source.return?.()).catch(() => {});
  };
  const done = { value: undefined, done: true } as const;
  /** The push consumer (event-hub.ts `PUSH`), when one is attached: a refusal ends it. */
  let sink: RunEventSink<T> | null = null;
  return {
    [PUSH](pushTo: RunEventSink<T>) {
      if (!canPush<T>(source)) return false;
      sink = pushTo;
      return source[PUSH]({
        next: (item) => pushTo.next(item),
        end: (error) => {
          stop();
          pushTo.end(error);
        },
        ...(pushTo.room ? { room: () => pushTo.room!() } : {}),
      });
    },
    async next() {
      if (refusal) throw refusal;
      let item: IteratorResult<T>;
      try {
        item = await source.next();
      } catch (error) {
        stop();
        throw error;
      }
      if (refusal) throw refusal;
      if (item.done) stop();
      return item;
    },
    async return() {
      stop();
      return done;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
