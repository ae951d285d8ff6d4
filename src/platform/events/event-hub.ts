/**
 * Fans run events out to this process's subscribers.
 *
 * One LISTEN connection per API process hears `{runId, seq}` notices; for each run that has
 * subscribers here, ONE query reads the new rows (seq > what this hub has read) and every
 * subscriber of that run gets them — 1,000 subscribers on a run cost one query per batch, not
 * 1,000. Rows, not notices, are the truth: a missed or coalesced notice only delays delivery
 * until the next notice or the poll, never loses an event.
 *
 * A subscriber first replays the table from its `afterSeq`, buffering live rows meanwhile, then
 * goes live; its own cursor drops anything it has already delivered. So the stream is exactly
 * the table's rows with seq > afterSeq, in order, without gaps or repeats.
 *
 * Every subscriber of a run gets the same row objects: the API executes and serialises each
 * once per sharing key (api/run-event-fanout.ts). A subscriber's queue is bounded
 * (`maxQueuedEvents`): a consumer that falls that far behind — a slow socket — ends with a
 * `SubscriberBehindError` naming the seq to resume after, and never holds up the others, whose
 * queues are their own. The replay reads its next page only once the queue has room.
 *
 * A consumer may instead take the events pushed (`PUSH`, a `RunEventSink`): the same filtered,
 * ordered stream handed over synchronously as rows are read, with no queue, Promise or iterator
 * step per event. The API's fan-out does so (it writes each event to all its sockets in one pass)
 * and bounds the backlog at the socket; the replay then waits for the sink's `room()`.
 */
import pg from "pg";
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";
import { recordEventDelivery } from "../metrics/event-delivery.ts";
import { RUN_EVENTS_CHANNEL, type RunEventNotice, readRunEvents } from "./event-log.ts";
import { isTerminalRunEvent, type RunEvent } from "./run-event.ts";

const FETCH_PAGE = 1000;
/** Rows in one replay page: a backlog bound must hold at least this many (a page is handed over at once). */
export const REPLAY_PAGE_EVENTS = FETCH_PAGE;
/**
 * How long a replay page stays shared after it was read. Dashboards opened together (a connect
 * storm: a wall of screens after a deploy, every tab after a network blip) mostly replay from the
 * same seq; a few seconds of sharing turns thousands of identical reads into a handful.
 */
const REPLAY_SHARE_MS = 2_000;
/** Default bound of a subscriber's queue: past it the subscriber is cut off (it resumes with afterSeq). */
export const DEFAULT_MAX_QUEUED_EVENTS = 2 * FETCH_PAGE;

/** A subscriber's consumer fell `maxQueuedEvents` behind; it resumes with `afterSeq: resumeAfterSeq`. */
export class SubscriberBehindError extends Error {
  constructor(
    readonly resumeAfterSeq: number,
    maxQueued: number,
  ) {
    super(
      `this subscription fell more than ${maxQueued} events behind (a slow connection); ` +
        `resubscribe with afterSeq: ${resumeAfterSeq}`,
    );
  }
}

/** What the hub's reads cost, for `incubator bench events` and metrics. */
export interface HubStats {
  /** NOTIFY notices heard, and reads of new rows (coalesced notices share one). */
  notices: number;
  reads: number;
  /** Milliseconds from a notice to its rows being handed to subscribers, summed, and the worst. */
  noticeToRowsMs: number;
  maxNoticeToRowsMs: number;
  /** Replay pages read from the table (subscribers sharing a page count once). */
  replayReads: number;
}

/**
 * A push consumer of a run's events (api/run-event-fanout.ts): instead of pulling each event
 * through an async iterator — a Promise and a microtask chain per event per subscriber — it is
 * handed every event synchronously, in seq order, as the hub reads it, and told once when the
 * stream ends. The consumer then bounds its own backlog (its socket's), so the hub's queue is
 * not used while a sink is attached.
 */
export interface RunEventSink<T = RunEvent> {
  next(event: T): void;
  /** The stream ended: `error` set (cut off, hub closing, refused), or done (terminal event). Not called after the consumer's own `return()`. */
  end(error?: Error): void;
  /** Resolves once the consumer can take another replay page (its writes drained). */
  room?(): Promise<void>;
}

/**
 * Streams that can push (the hub's, and wrappers that forward it): `stream[PUSH](sink)` attaches
 * a sink and returns the seq the stream starts after, or `false` when the stream cannot push
 * (then the consumer iterates as usual). Call it before the first `next()`.
 */
export const PUSH: unique symbol = Symbol("incubator.runEventPush");
export interface Pushable<T> {
  [PUSH](sink: RunEventSink<T>): number | false;
}
export const canPush = <T>(stream: unknown): stream is Pushable<T> =>
  typeof stream === "object" &&
  stream !== null &&
  typeof (stream as Partial<Pushable<T>>)[PUSH] === "function";

export interface SubscribeOptions {
  afterSeq?: number;
  moduleIndex?: number | null;
  /** End the stream after the run's terminal STATE event (default true). */
  completeOnTerminal?: boolean;
}

class Subscriber implements AsyncIterableIterator<RunEvent>, Pushable<RunEvent> {
  private queue: RunEvent[] = [];
  /** The push consumer, once attached; then `push` hands rows to it instead of the queue. */
  private sink: RunEventSink | null = null;
  /** The consumer ended the stream itself (`return()`): it is not told `end`. */
  private returned = false;
  private waiting: ((result: IteratorResult<RunEvent> | Promise<IteratorResult<RunEvent>>) => void) | null =
    null;
  private failure: Error | null = null;
  done = false;
  /** Buffer live rows until the replay has caught up. */
  replaying = true;
  private buffered: RunEvent[] = [];
  /** The seq of the last event the consumer took: where it resumes if cut off. */
  private taken: number;
  private room: (() => void) | null = null;

  constructor(
    public cursor: number,
    private readonly moduleIndex: number | null,
    private readonly completeOnTerminal: boolean,
    private readonly maxQueued: number,
    private readonly onClose: (subscriber: Subscriber) => void,
  ) {
    this.taken = cursor;
  }

  [PUSH](sink: RunEventSink): number {
    this.sink = sink;
    // Rows queued before the sink came (the replay may have started) go first, in order.
    const queued = this.queue;
    this.queue = [];
    for (const row of queued) sink.next(row);
    if (this.done && !this.returned) this.endSink();
    return this.taken;
  }

  /** Resolves once the consumer has taken enough that another replay page fits. */
  whenRoom(): Promise<void> {
    if (this.sink) return this.done ? Promise.resolve() : (this.sink.room?.() ?? Promise.resolve());
    if (this.done || this.queue.length + FETCH_PAGE <= this.maxQueued) return Promise.resolve();
    return new Promise((resolve) => {
      this.room = resolve;
    });
  }

  /** Deliver live rows (buffered while replaying). */
  offerLive(rows: RunEvent[]): void {
    if (this.replaying) this.buffered.push(...rows);
    else this.deliver(rows);
  }

  /** Deliver rows in seq order; rows at or below the cursor were delivered already. */
  deliver(rows: RunEvent[]): void {
    for (const row of rows) {
      if (this.done) return;
      if (row.seq <= this.cursor) continue;
      this.cursor = row.seq;
      const terminal = this.completeOnTerminal && isTerminalRunEvent(row);
      if (this.moduleIndex === null || row.moduleIndex === this.moduleIndex || terminal) this.push(row);
      if (terminal) {
        this.finish();
        return;
      }
    }
  }

  finishReplay(): void {
    this.replaying = false;
    const buffered = this.buffered;
    this.buffered = [];
    this.deliver(buffered);
  }

  private push(row: RunEvent): void {
    recordEventDelivery(row.createdAt, this.replaying);
    if (this.sink) {
      this.sink.next(row);
      return;
    }
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: row, done: false });
      return;
    }
    this.queue.push(row);
    if (this.queue.length > this.maxQueued) {
      this.queue = [];
      this.fail(new SubscriberBehindError(this.taken, this.maxQueued));
    }
  }

  fail(error: Error): void {
    this.failure = error;
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onClose(this);
    this.room?.();
    if (this.sink) {
      if (!this.returned) this.endSink();
      return;
    }
    if (this.waiting && this.queue.length === 0) {
      // Settle the waiting `next()` as a fresh one would: done, or the failure that ended it.
      const settle = this.waiting;
      this.waiting = null;
      settle(this.next());
    }
  }

  next(): Promise<IteratorResult<RunEvent>> {
    const row = this.queue.shift();
    if (row) {
      this.taken = row.seq;
      if (this.room && this.queue.length + FETCH_PAGE <= this.maxQueued) {
        const room = this.room;
        this.room = null;
        room();
      }
      return Promise.resolve({ value: row, done: false });
    }
    if (this.failure) {
      const failure = this.failure;
      this.failure = null;
      return Promise.reject(failure);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  private endSink(): void {
    const failure = this.failure;
    this.failure = null;
    this.sink?.end(failure ?? undefined);
  }

  return(): Promise<IteratorResult<RunEvent>> {
    this.returned = true;
    this.queue = [];
    this.finish();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<RunEvent> {
    return this;
  }
}

interface RunChannel {
  /** Highest seq this hub has read for the run. */
  cursor: number;
  subscribers: Set<Subscriber>;
  fetching: boolean;
  again: boolean;
}

export interface RunEventHubOptions {
  db: Db;
  databaseUrl: string;
  logger: Logger;
  /** Safety net for lost connections: re-read runs with subscribers this often. */
  pollIntervalMs?: number;
  /** Events one subscriber may have waiting before it is cut off (default DEFAULT_MAX_QUEUED_EVENTS). */
  maxQueuedEvents?: number;
}

export class RunEventHub {
  private readonly channels = new Map<string, RunChannel>();
  /**
   * Other NOTIFY channels this process hears on the same LISTEN connection (one per process),
   * e.g. API token revocations. A notice sent while the connection was down is lost: listeners
   * keep their own poll as the safety net.
   */
  private readonly otherChannels = new Map<string, (payload: string) => void>();
  private listener: pg.Client | null = null;
  private poll: NodeJS.Timeout | null = null;
  private closed = false;
  private reconnectDelayMs = 250;
  /** When the oldest notice not yet read arrived, per run (for `stats`). */
  private readonly noticedAt = new Map<string, number>();
  readonly stats: HubStats = {
    notices: 0,
    reads: 0,
    noticeToRowsMs: 0,
    maxNoticeToRowsMs: 0,
    replayReads: 0,
  };
  private readonly maxQueued: number;
  /**
   * Replay pages shared by subscribers that start from the same seq (`${runId}:${afterSeq}`),
   * with the hub's cursor for the run when the read was issued: every row at or below it was
   * committed before the read, so the page holds it (see `replayPage`). Shared pages are shared
   * row objects too, so the API executes and serialises each replayed event once, not once per
   * subscriber.
   */
  private readonly replayReads = new Map<string, { rows: Promise<RunEvent[]>; hubCursor: number }>();

  constructor(private readonly options: RunEventHubOptions) {
    // A whole page of rows (one read) must fit in a queue.
    this.maxQueued = Math.max(options.maxQueuedEvents ?? DEFAULT_MAX_QUEUED_EVENTS, FETCH_PAGE);
  }

  async start(): Promise<void> {
    await this.connectListener();
    this.poll = setInterval(() => this.refreshAll(), this.options.pollIntervalMs ?? 5_000);
    this.poll.unref();
  }

  /** Hear `channel`'s notices (its payload) from now on, across reconnects. */
  async listen(channel: string, handler: (payload: string) => void): Promise<void> {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`not a channel name: ${channel}`);
    this.otherChannels.set(channel, handler);
    await this.listener?.query(`LISTEN ${channel}`);
  }

  /** Subscribers in this process that have finished their replay and wait for live rows (for metrics and tests). */
  get subscriberCount(): number {
    let n = 0;
    for (const channel of this.channels.values())
      for (const subscriber of channel.subscribers) if (!subscriber.replaying) n++;
    return n;
  }

  /** Stream a run's events with seq > afterSeq, then live ones, in order. */
  subscribe(runId: string, options: SubscribeOptions = {}): AsyncIterableIterator<RunEvent> {
    if (this.closed) throw new Error("event hub is closed");
    const subscriber = new Subscriber(
      options.afterSeq ?? 0,
      options.moduleIndex ?? null,
      options.completeOnTerminal ?? true,
      this.maxQueued,
      (s) => this.remove(runId, s),
    );
    void this.attach(runId, subscriber);
    return subscriber;
  }

  /**
   * Stop. Streams still open end with an error, never as if complete: their run goes on, and a
   * subscriber resumes elsewhere with its last seq. (The API server closes its sockets first.)
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    for (const channel of this.channels.values()) {
      for (const subscriber of channel.subscribers)
        subscriber.fail(new Error("the event hub is shutting down; resubscribe with afterSeq"));
    }
    this.channels.clear();
    this.replayReads.clear();
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
  }

  private async attach(runId: string, subscriber: Subscriber): Promise<void> {
    try {
      let channel = this.channels.get(runId);
      if (!channel) {
        // Start reading live rows after what is committed now; the replay covers the rest.
        const run = await this.options.db.run.findUnique({
          where: { id: runId },
          select: { lastEventSeq: true },
        });
        if (!run) throw new Error(`no run with id ${runId}`);
        channel = this.channels.get(runId) ?? {
          cursor: run.lastEventSeq,
          subscribers: new Set(),
          fetching: false,
          again: false,
        };
        this.channels.set(runId, channel);
      }
      channel.subscribers.add(subscriber);
      // Replay from the table: everything the hub has read (or will read) is committed by now.
      // Rows the hub reads from here on reach the subscriber live; those it read before must
      // come from the replay, so its pages must be read with the hub's cursor at least this far.
      const joinedAt = channel.cursor;
      for (;;) {
        const page = await this.replayPage(runId, subscriber.cursor, joinedAt, channel);
        subscriber.deliver(page);
        if (page.length < FETCH_PAGE || subscriber.done) break;
        await subscriber.whenRoom();
      }
      subscriber.finishReplay();
    } catch (error) {
      subscriber.fail(error as Error);
    }
  }

  /**
   * The page of `runId`'s rows after `afterSeq`: a shared one when a read from the same seq was
   * issued recently with the hub's cursor at least `needCursor` (so it holds every row the
   * subscriber did not get live), else a fresh read that later subscribers share.
   */
  private replayPage(
    runId: string,
    afterSeq: number,
    needCursor: number,
    channel: RunChannel,
  ): Promise<RunEvent[]> {
    const key = `${runId}:${afterSeq}`;
    const shared = this.replayReads.get(key);
    if (shared && shared.hubCursor >= needCursor) return shared.rows;
    this.stats.replayReads++;
    const entry = {
      rows: readRunEvents(this.options.db, runId, afterSeq, { limit: FETCH_PAGE }),
      hubCursor: channel.cursor,
    };
    this.replayReads.set(key, entry);
    const forget = () => {
      if (this.replayReads.get(key) === entry) this.replayReads.delete(key);
    };
    entry.rows.then(
      () => setTimeout(forget, REPLAY_SHARE_MS).unref(),
      forget, // a failed read is not shared: the next subscriber reads again
    );
    return entry.rows;
  }

  private remove(runId: string, subscriber: Subscriber): void {
    const channel = this.channels.get(runId);
    if (!channel) return;
    channel.subscribers.delete(subscriber);
    if (channel.subscribers.size === 0) this.channels.delete(runId);
  }

  private onNotice(notice: RunEventNotice): void {
    this.stats.notices++;
    const channel = this.channels.get(notice.runId);
    if (channel && notice.seq > channel.cursor) {
      if (!this.noticedAt.has(notice.runId)) this.noticedAt.set(notice.runId, performance.now());
      void this.fetch(notice.runId, channel);
    }
  }

  private refreshAll(): void {
    for (const [runId, channel] of this.channels) void this.fetch(runId, channel);
  }

  /** Read new rows once for all of a run's subscribers; coalesces overlapping notices. */
  private async fetch(runId: string, channel: RunChannel): Promise<void> {
    if (channel.fetching) {
      channel.again = true;
      return;
    }
    channel.fetching = true;
    try {
      do {
        channel.again = false;
        for (;;) {
          const rows = await readRunEvents(this.options.db, runId, channel.cursor, { limit: FETCH_PAGE });
          this.stats.reads++;
          if (rows.length === 0) break;
          channel.cursor = rows[rows.length - 1]!.seq;
          this.noteRead(runId);
          for (const subscriber of channel.subscribers) subscriber.offerLive(rows);
          if (rows.length < FETCH_PAGE) break;
        }
      } while (channel.again);
    } catch (error) {
      this.options.logger.warn({ err: error, runId }, "event hub: reading new events failed; will retry");
    } finally {
      channel.fetching = false;
    }
  }

  private noteRead(runId: string): void {
    const at = this.noticedAt.get(runId);
    if (at === undefined) return;
    this.noticedAt.delete(runId);
    const took = performance.now() - at;
    this.stats.noticeToRowsMs += took;
    if (took > this.stats.maxNoticeToRowsMs) this.stats.maxNoticeToRowsMs = took;
  }

  private async connectListener(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.databaseUrl });
    client.on("notification", (message) => {
      const other = this.otherChannels.get(message.channel);
      if (other) return other(message.payload ?? "");
      if (message.channel !== RUN_EVENTS_CHANNEL || !message.payload) return;
      try {
        this.onNotice(JSON.parse(message.payload) as RunEventNotice);
      } catch {
        this.options.logger.warn({ payload: message.payload }, "event hub: unreadable notice");
      }
    });
    client.on("error", (error) => {
      this.options.logger.warn({ err: error }, "event hub: LISTEN connection lost; reconnecting");
      void this.reconnect(client);
    });
    await client.connect();
    await client.query(`LISTEN ${RUN_EVENTS_CHANNEL}`);
    for (const channel of this.otherChannels.keys()) await client.query(`LISTEN ${channel}`);
    this.listener = client;
    this.reconnectDelayMs = 250;
  }

  private async reconnect(broken: pg.Client): Promise<void> {
    if (this.closed || this.listener !== broken) return;
    this.listener = null;
    await broken.end().catch(() => {});
    while (!this.closed) {
      try {
        await this.connectListener();
        this.refreshAll(); // catch up on anything committed while we were deaf
        return;
      } catch {
        await new Promise((r) => setTimeout(r, this.reconnectDelayMs));
        this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, 10_000);
      }
    }
  }
}
