/**
 * Relay cursor connections. `paginate` pages lists ordered by (createdAt, id): `first`/`after`
 * walk forwards, `last`/`before` backwards, keyset conditions (no OFFSET), one row more than
 * asked to learn whether another page exists. Cursors are opaque to clients: base64url of the
 * row's sort key. `toConnection` builds a page's connection for any key (Run.events: `seq`).
 */
import { GraphQLError } from "graphql";

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

export interface PageInfo {
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  nodes: T[];
  pageInfo: PageInfo;
  /** Resolved only when the query asks for it (graphql-js calls function-valued fields). */
  totalCount: () => Promise<number>;
}

type Direction = "asc" | "desc";
type Cmp = { gt: Date } | { lt: Date };
type IdCmp = { gt: string } | { lt: string };
/** A keyset condition every model with (createdAt, id) accepts in its `where`. */
export type KeysetWhere = { OR: ({ createdAt: Cmp } | { createdAt: Date; id: IdCmp })[] };
export type KeysetOrder = [{ createdAt: Direction }, { id: Direction }];

interface Keyed {
  id: string;
  createdAt: Date;
}

export function badArgument(argument: string, message: string): GraphQLError {
  return new GraphQLError(`${argument}: ${message}`, { extensions: { code: "BAD_USER_INPUT", argument } });
}

export function encodeCursor(row: Keyed): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id]), "utf8").toString("base64url");
}

function decodeCursor(cursor: string, argument: string): { createdAt: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as [unknown, unknown];
    const createdAt = new Date(String(at));
    if (typeof at === "string" && typeof id === "string" && !Number.isNaN(createdAt.getTime())) {
      return { createdAt, id };
    }
  } catch {}
  throw badArgument(argument, `"${cursor}" is not a cursor from this connection`);
}

/** Page size and direction from first/last; errors name the argument. */
export function pageSize(args: PageArgs): { size: number; backwards: boolean } {
  if (args.first != null && args.last != null) {
    throw badArgument("last", "give first or last, not both");
  }
  for (const name of ["first", "last"] as const) {
    const value = args[name];
    if (value != null && (value < 0 || value > MAX_PAGE_SIZE)) {
      throw badArgument(name, `must be between 0 and ${MAX_PAGE_SIZE}, got ${value}`);
    }
  }
  if (args.last != null) return { size: args.last, backwards: true };
  return { size: args.first ?? DEFAULT_PAGE_SIZE, backwards: false };
}

function beyond(cursor: { createdAt: Date; id: string }, greater: boolean): KeysetWhere {
  const cmp = greater ? "gt" : "lt";
  return {
    OR: [
      { createdAt: { [cmp]: cursor.createdAt } as Cmp },
      { createdAt: cursor.createdAt, id: { [cmp]: cursor.id } as IdCmp },
    ],
  };
}

/**
 * One page of a list ordered by (createdAt, id) in `order`. `find` runs the query with the
 * keyset conditions (to AND with its own filter), the order and the row limit.
 */
export async function paginate<T extends Keyed>(
  args: PageArgs,
  options: {
    order: Direction;
    find: (query: { keyset: KeysetWhere[]; orderBy: KeysetOrder; take: number }) => Promise<T[]>;
    count: () => Promise<number>;
  },
): Promise<Connection<T>> {
  const { size, backwards } = pageSize(args);
  const ascending = options.order === "asc";
  const keyset: KeysetWhere[] = [];
  if (args.after != null) keyset.push(beyond(decodeCursor(args.after, "after"), ascending));
  if (args.before != null) keyset.push(beyond(decodeCursor(args.before, "before"), !ascending));
  const direction: Direction = ascending !== backwards ? "asc" : "desc";
  const rows = await options.find({
    keyset,
    orderBy: [{ createdAt: direction }, { id: direction }],
    take: size + 1,
  });
  return toConnection(rows, {
    size,
    backwards,
    fromCursor: backwards ? args.before != null : args.after != null,
    cursorOf: encodeCursor,
    count: options.count,
  });
}

/**
 * The connection for one page, whatever the sort key: `fetched` holds up to `size + 1` rows in
 * fetch order (reversed when paging backwards), the extra row saying another page lies beyond.
 * `fromCursor`: the page starts at a cursor, so rows lie before it (after it, backwards).
 */
export function toConnection<T>(
  fetched: T[],
  page: {
    size: number;
    backwards: boolean;
    fromCursor: boolean;
    cursorOf: (row: T) => string;
    count: () => Promise<number>;
  },
): Connection<T> {
  const more = fetched.length > page.size;
  const rows = more ? fetched.slice(0, page.size) : fetched;
  if (page.backwards) rows.reverse();
  const edges = rows.map((node) => ({ cursor: page.cursorOf(node), node }));
  let total: Promise<number> | undefined;
  return {
    edges,
    nodes: rows,
    pageInfo: {
      hasNextPage: page.backwards ? page.fromCursor : more,
      hasPreviousPage: page.backwards ? more : page.fromCursor,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount: () => {
      total ??= page.count();
      return total;
    },
  };
}
