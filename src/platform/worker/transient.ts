/**
 * A worker's calls to the platform (events, completion, failure) must survive a short database
 * or API outage: a lost batch of events or a lost completion means a gap in the run's log or a
 * job trained twice. `untilAnswered` retries a call while its error is a connection failure, with
 * backoff, for at most `giveUpAfterMs`; any other error (not held, bad input) is thrown at once.
 */
const TRANSIENT_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);
const TRANSIENT_MESSAGE =
  /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection terminated|terminating connection|server closed the connection|Can't reach database|fetch failed|socket hang up|HTTP 50[234]/i;

export function isTransient(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && TRANSIENT_PRISMA_CODES.has(code)) return true;
  const cause = (error as { cause?: unknown }).cause;
  const message = `${(error as { message?: unknown }).message ?? ""} ${cause instanceof Error ? cause.message : ""}`;
  return TRANSIENT_MESSAGE.test(message);
}

export async function untilAnswered<T>(
  call: () => Promise<T>,
  options: { giveUpAfterMs?: number; onRetry?: (error: unknown, delayMs: number) => void } = {},
): Promise<T> {
  const deadline = Date.now() + (options.giveUpAfterMs ?? 10 * 60_000);
  for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
    try {
      return await call();
    } catch (error) {
      if (!isTransient(error) || Date.now() + delay > deadline) throw error;
      options.onRetry?.(error, delay);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
