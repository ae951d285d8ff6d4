/**
 * The append-only progress log of a run: the source of truth for every progress, state-change
 * and log event. Each run's events get dense sequence numbers 1, 2, 3, … so a client that saw
 * seq n asks for `afterSeq: n` and misses nothing, sees nothing twice.
 *
 * Appending bumps `run.last_event_seq` under that row's lock, inserts the rows, and sends
 * `NOTIFY run_events '{"runId":…,"seq":…}'` in the same transaction — PostgreSQL delivers a
 * notification only at commit, so a listener never hears of a row it cannot read yet. The
 * payload carries only ids (far below NOTIFY's 8000-byte limit); listeners read the rows.
 */
import type { Prisma } from "../../generated/prisma/client.ts";
import type { Db } from "../db/client.ts";

export const RUN_EVENTS_CHANNEL = "run_events";

export type RunEventType = "STATE" | "PROGRESS" | "LOG" | "METRIC" | "ARTIFACT";

export interface NewRunEvent {
  type: RunEventType;
  moduleIndex?: number | null;
  payload?: Prisma.InputJsonValue;
}

export interface StoredRunEvent {
  runId: string;
  seq: number;
  type: string;
  moduleIndex: number | null;
  payload: unknown;
  createdAt: Date;
}

export interface RunEventNotice {
  runId: string;
  seq: number;
}

/** Append events to a run's log; returns their sequence numbers. */
export async function appendRunEvents(db: Db, runId: string, events: NewRunEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  return db.$transaction(async (tx) => {
    const bumped = await tx.$queryRaw<{ last_event_seq: number }[]>`
      update "run" set "last_event_seq" = "last_event_seq" + ${events.length}
      where "id" = ${runId}::uuid returning "last_event_seq"`;
    const last = bumped[0]?.last_event_seq;
    if (last === undefined) throw new Error(`appendRunEvents: no run with id ${runId}`);
    const first = last - events.length + 1;
    await tx.runEvent.createMany({
      data: events.map((event, i) => ({
        runId,
        seq: first + i,
        type: event.type,
        moduleIdx: event.moduleIndex ?? null,
        payload: event.payload ?? {},
      })),
    });
    const notice: RunEventNotice = { runId, seq: last };
    await tx.$executeRaw`select pg_notify(${RUN_EVENTS_CHANNEL}, ${JSON.stringify(notice)})`;
    return events.map((_, i) => first + i);
  });
}

/** Events of a run with seq > afterSeq, in seq order (optionally one module's only). */
export async function readRunEvents(
  db: Db,
  runId: string,
  afterSeq: number,
  options: { limit?: number; moduleIndex?: number | null } = {},
): Promise<StoredRunEvent[]> {
  const rows = await db.runEvent.findMany({
    where: {
      runId,
      seq: { gt: afterSeq },
      ...(options.moduleIndex != null ? { moduleIdx: options.moduleIndex } : {}),
    },
    orderBy: { seq: "asc" },
    take: options.limit ?? 1000,
  });
  return rows.map((row) => ({
    runId: row.runId,
    seq: row.seq,
    type: row.type,
    moduleIndex: row.moduleIdx,
    payload: row.payload,
    createdAt: row.createdAt,
  }));
}
