/**
 * The stale-job sweep: a job whose worker stopped heartbeating for `staleAfterMs` goes back to
 * the queue (`Dispatcher.failStaleJobs`). Every DB worker runs one, and so does the API server
 * process, so recovery works when all workers are API workers.
 *
 * Silence only means something while heartbeats could have landed. After a database outage, a
 * pause of this process (blocked event loop, suspended machine) or its start, every live job's
 * heartbeat looks old: judging then would hand every job on. So the sweeper judges only once it
 * has reached the database continuously for a whole `staleAfterMs` — a failed sweep, or a gap of
 * more than two intervals between successful ones, starts that window again — and the cutoff is
 * taken from the database's clock, the one all sweepers share.
 */
import type { Db } from "../db/client.ts";
import type { Logger } from "../logger.ts";

/** `now() - staleAfterMs` on the database's clock: heartbeats older than this are stale. */
export async function staleCutoff(db: Db, staleAfterMs: number): Promise<Date> {
  const [row] = await db.$queryRaw<{ cutoff: Date }[]>`
    SELECT now() - make_interval(secs => ${staleAfterMs / 1000}::double precision) AS cutoff`;
  return new Date(row!.cutoff);
}

export interface StaleJobSweepOptions {
  /** `Dispatcher` (named structurally: dispatcher.ts imports this file for `staleCutoff`). */
  dispatcher: { failStaleJobs(staleAfterMs: number): Promise<string[]> };
  /** For the connectivity probe that opens each sweep. */
  db: Db;
  staleAfterMs: number;
  logger: Logger;
  /** How often to sweep (default a third of `staleAfterMs`, at least 1 s). */
  intervalMs?: number;
}

export class StaleJobSweeper {
  readonly intervalMs: number;
  /** Monotonic ms: since when the database has been reachable without a gap; null: not now. */
  private healthySince: number | null = null;
  private lastContact: number | null = null;
  private running = false;

  constructor(private readonly o: StaleJobSweepOptions) {
    this.intervalMs = o.intervalMs ?? Math.max(1000, o.staleAfterMs / 3);
  }

  /** A gap longer than this between successful contacts counts as an outage. */
  get maxGapMs(): number {
    return 2 * this.intervalMs;
  }

  /**
   * One sweep: returns the jobs handed back, none while the healthy window is shorter than
   * `staleAfterMs`. Throws when the database cannot be reached (and the window starts over).
   */
  async sweep(): Promise<string[]> {
    try {
      await this.o.db.$queryRaw`SELECT 1`;
      const now = performance.now();
      if (this.lastContact === null || now - this.lastContact > this.maxGapMs) this.healthySince = now;
      this.lastContact = now;
      if (now - this.healthySince! < this.o.staleAfterMs) return [];
      return await this.o.dispatcher.failStaleJobs(this.o.staleAfterMs);
    } catch (error) {
      this.healthySince = null;
      this.lastContact = null;
      throw error;
    }
  }

  /** Sweep every `intervalMs` until the returned function is called. */
  start(): () => void {
    const timer = setInterval(() => {
      if (this.running) return; // a slow sweep: the gap check sees it
      this.running = true;
      this.sweep()
        .catch((e) =>
          this.o.logger.warn({ err: e }, "stale-job check failed; judging again after a full window"),
        )
        .finally(() => {
          this.running = false;
        });
    }, this.intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

/** Start a sweeper on a timer; returns its stop function. */
export function startStaleJobSweep(o: StaleJobSweepOptions): () => void {
  return new StaleJobSweeper(o).start();
}
