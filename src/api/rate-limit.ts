/**
 * Per-caller limits: a token bucket of requests (every HTTP request and every graphql-ws
 * operation take one token from the same bucket) and a count of open WebSocket connections.
 * A caller is its API token or worker token; without one (local mode, or no or a bad token) it
 * is the remote address.
 *
 * In memory, per process: N replicas behind a load balancer allow N× the rate and N× the
 * connections. A bucket left idle long enough to have refilled is dropped (it is the same as a
 * new one), so memory stays bounded by the callers active in the last `burst / perSecond` seconds.
 */
import { GraphQLError } from "graphql";
import type { Principal } from "./auth/principal.ts";

export const RATE_LIMITED = "RATE_LIMITED";
/** WebSocket close code for a connection over the per-caller limit (like HTTP 429). */
export const WS_TOO_MANY_CONNECTIONS = 4429;
/** How often, at most, `take` looks for idle buckets to drop. */
const SWEEP_EVERY_MS = 10_000;

/** The key the per-caller limits count under. */
export function callerKey(principal: Principal, remoteAddress: string | undefined): string {
  if (principal.kind === "api") return `api:${principal.token.id}`;
  if (principal.kind === "worker") return `worker:${principal.token.id}`;
  return `ip:${remoteAddress ?? "unknown"}`;
}

/** Who a caller key names, for messages (no secrets: ids and addresses only). */
const describeKey = (key: string) =>
  key.startsWith("ip:")
    ? `address ${key.slice(3)}`
    : `this ${key.startsWith("api:") ? "API" : "worker"} token`;

export type Take = { ok: true } | { ok: false; retryAfterSeconds: number; message: string };

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private lastSweep = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take one token from `key`'s bucket. */
  take(key: string): Take {
    const now = this.now();
    this.sweep(now);
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true };
    }
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond));
    return {
      ok: false,
      retryAfterSeconds,
      message:
        `too many requests from ${describeKey(key)}: the limit is ${this.perSecond} per second ` +
        `(bursts of ${this.burst}); retry in ${retryAfterSeconds} s`,
    };
  }

  /** Buckets tracked now (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private sweep(now: number) {
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    const refillMs = (this.burst / this.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) if (now - bucket.at >= refillMs) this.buckets.delete(key);
  }
}

/** The GraphQL error of an operation over the rate limit (graphql-ws). */
export const rateLimitError = (refused: Extract<Take, { ok: false }>) =>
  new GraphQLError(refused.message, {
    extensions: { code: RATE_LIMITED, retryAfterSeconds: refused.retryAfterSeconds },
  });

/** Open WebSocket connections per caller key. */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Count one more for `key`: a refusal message when that is over the limit (nothing counted). */
  acquire(key: string): string | null {
    const n = this.open.get(key) ?? 0;
    if (n >= this.max)
      return `${RATE_LIMITED}: ${describeKey(key)} has ${n} WebSocket connections open; the limit is ${this.max}`;
    this.open.set(key, n + 1);
    return null;
  }

  release(key: string): void {
    const n = (this.open.get(key) ?? 1) - 1;
    if (n <= 0) this.open.delete(key);
    else this.open.set(key, n);
  }
}
