/**
 * The append-only progress log of a run: the source of truth for every progress, state-change
 * and log event. Each run's events get dense sequence numbers 1, 2, 3, … so a client that saw
 * seq n asks for `afterSeq: n` and misses nothing, sees nothing twice.
 *
 * Appending bumps `run.last_event_seq` under that row's lock, inserts the rows, and sends
 * `NOTIFY run_events '{"runId":…,"seq":…}'` in the same transaction — PostgreSQL delivers a
 * notification only at commit, so a listener never hears of a row it cannot read yet. The
 * payload carries only ids (far below NOTIFY's 8000-byte limit); listeners read the rows.
 *
 * What an event may hold is defined once, in run-event.ts; rows are validated on the way in and
 * parsed on the way out.
 */
import type { Prisma } from "../../generated/prisma/client.ts";
import type { Db } from "../db/client.ts";
import { type NewRunEvent, parseRunEvent, type RunEvent, toColumns } from "./run-event.ts";

export const RUN_EVENTS_CHANNEL = "run_events";

export interface RunEventNotice {
  runId: string;
  seq: number;
}

/**
 * Append events to a run's log inside the caller's transaction (their seq numbers, notice and
 * the caller's other writes commit together); returns their sequence numbers.
 */
export async function appendRunEventsInTx(
  tx: Prisma.TransactionClient,
  runId: string,
  events: readonly NewRunEvent[],
): Promise<number[]> {
  if (events.length === 0) return [];
  const rows = events.map(toColumns);
  const bumped = await tx.$queryRaw<{ last_event_seq: number }[]>`
    update "run" set "last_event_seq" = "last_event_seq" + ${rows.length}
    where "id" = ${runId}::uuid returning "last_event_seq"`;
  const last = bumped[0]?.last_event_seq;
  if (last === undefined) throw new Error(`appendRunEvents: no run with id ${runId}`);
  const first = last - rows.length + 1;
  await tx.runEvent.createMany({
    data: rows.map((row, i) => ({
      runId,
      seq: first + i,
      type: row.type,
      moduleIdx: row.moduleIndex,
      payload: row.payload as Prisma.InputJsonObject,
    })),
  });
  const notice: RunEventNotice = { runId, seq: last };
  await tx.$executeRaw`select pg_notify(${RUN_EVENTS_CHANNEL}, ${JSON.stringify(notice)})`;
  return rows.map((_, i) => first + i);
}

/** Append events to a run's log in a transaction of their own; returns their sequence numbers. */
export async function appendRunEvents(
  db: Db,
  runId: string,
  events: readonly NewRunEvent[],
): Promise<number[]> {
  if (events.length === 0) return [];
  return db.$transaction((tx) => appendRunEventsInTx(tx, runId, events));
}

/** Events of a run with seq > afterSeq, in seq order (optionally one module's only). */
export async function readRunEvents(
  db: Db,
  runId: string,
  afterSeq: number,
  options: { limit?: number; moduleIndex?: number | null } = {},
): Promise<RunEvent[]> {
  const rows = await db.runEvent.findMany({
    where: {
      runId,
      seq: { gt: afterSeq },
      ...(options.moduleIndex != null ? { moduleIdx: options.moduleIndex } : {}),
    },
    orderBy: { seq: "asc" },
    take: options.limit ?? 1000,
  });
  return rows.map(parseRunEvent);
}
