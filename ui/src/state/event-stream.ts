/**
 * Follows one run's `runEvents` subscription into a RunEventFold. It always subscribes with
 * `afterSeq` = the fold's last applied seq: at page load (the fold restored from this tab's
 * sessionStorage, so a reload resumes instead of replaying), and after a dropped connection or a
 * server restart (graphql-ws's own retry would resend the first afterSeq). Replayed events are
 * dropped by seq, and a gap resubscribes from the last seq, so the fold never misses or repeats one.
 */
import type { Client } from "graphql-ws";
import { subscriptionClient } from "../api/graphql.ts";
import { RUN_EVENTS_SUBSCRIPTION } from "../api/queries.ts";
import type { RunEventView } from "../api/types.ts";
import { applyEvents, type FoldData, isFinished, restoreFold, saveFold } from "./run-fold.ts";

export type StreamStatus = "connecting" | "live" | "reconnecting" | "ended" | "error";

export interface RunEventStream {
  readonly fold: FoldData;
  status: StreamStatus;
  error: string | null;
  /**
   * Follow again after the stream ended: the run left its final state (a module retried after
   * a cancellation). Resumes after the fold's last seq, like any reconnect.
   */
  reopen(): void;
  /** Save the fold now (the page is going away). */
  persist(): void;
  /** Called (batched, about 30 times a second at most) after events were applied or the status changed. */
  onChange(listener: () => void): () => void;
  stop(): void;
}

const RETRY_MS = [500, 1000, 2000, 5000, 10_000];
const SAVE_EVERY_MS = 1000;

const sessionStore = (): Storage | null => {
  try {
    return sessionStorage;
  } catch {
    return null;
  }
};

/**
 * What a subscription failure means: GraphQL errors (refused: bad id, no access) and closes for
 * a missing or revoked token (4401, 4403) are final; anything else is a lost connection to retry.
 */
function describeFailure(error: unknown): { message: string; final: boolean } {
  if (Array.isArray(error))
    return {
      message: String((error[0] as { message?: string })?.message ?? "subscription refused"),
      final: true,
    };
  const close = error as { code?: number; reason?: string };
  if (typeof close?.code === "number") {
    const final = close.code === 4401 || close.code === 4403;
    return { message: close.reason || `connection closed (${close.code})`, final };
  }
  return { message: error instanceof Error ? error.message : "connection lost", final: false };
}

export function followRunEvents(runId: string): RunEventStream {
  const fold = restoreFold(runId, sessionStore());
  const listeners = new Set<() => void>();
  let pending: RunEventView[] = [];
  let frame: ReturnType<typeof setTimeout> | undefined;
  let client: Client | null = null;
  let unsubscribe: (() => void) | null = null;
  let retries = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let saveTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let reopening = false;

  const save = () => {
    saveTimer = undefined;
    saveFold(fold, sessionStore());
  };
  // Events arrive one WebSocket message each: apply and redraw them in batches, not one by one.
  const notify = () => {
    if (frame !== undefined) return;
    frame = setTimeout(() => {
      frame = undefined;
      flush();
      for (const listener of listeners) listener();
    }, 30);
  };
  const flush = () => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    const outcome = applyEvents(fold, batch);
    if (outcome.gapAt !== null && !stopped) resubscribe(0); // missed one: ask again from lastSeq
    saveTimer ??= setTimeout(save, SAVE_EVERY_MS);
    if (isFinished(fold)) stream.status = "ended";
    else if (stream.status === "ended") stream.status = "live"; // the run went on (reopen)
  };

  const close = () => {
    unsubscribe?.();
    unsubscribe = null;
    void client?.dispose();
    client = null;
  };
  const resubscribe = (delayMs: number) => {
    close();
    clearTimeout(retryTimer);
    retryTimer = setTimeout(subscribe, delayMs);
  };
  const subscribe = () => {
    if (stopped) return;
    flush();
    if (isFinished(fold) && !reopening) {
      stream.status = "ended";
      notify();
      return;
    }
    reopening = false;
    client = subscriptionClient();
    const mine = client;
    client.on("connected", () => {
      retries = 0;
      stream.status = "live";
      stream.error = null;
      notify();
    });
    unsubscribe = client.subscribe<{ runEvents: RunEventView }>(
      { query: RUN_EVENTS_SUBSCRIPTION, variables: { runId, afterSeq: fold.lastSeq } },
      {
        next: (result) => {
          if (result.data?.runEvents) pending.push(result.data.runEvents);
          const message = result.errors?.[0]?.message;
          if (message) {
            stream.error = message;
            stream.status = "error";
          }
          notify();
        },
        complete: () => {
          if (client !== mine) return;
          flush();
          // The stream ends after the run's last state; anything else is a server going away.
          if (isFinished(fold)) {
            stream.status = "ended";
            notify();
          } else resubscribe(RETRY_MS[0]!);
        },
        error: (error) => {
          if (client !== mine) return;
          const { message, final } = describeFailure(error);
          stream.error = message;
          stream.status = final ? "error" : "reconnecting";
          notify();
          if (!final) resubscribe(RETRY_MS[Math.min(retries++, RETRY_MS.length - 1)]!);
        },
      },
    );
  };

  const stream: RunEventStream = {
    fold,
    status: "connecting",
    error: null,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    reopen() {
      if (stopped || stream.status !== "ended") return;
      reopening = true;
      stream.status = "connecting";
      notify();
      resubscribe(0);
    },
    persist() {
      flush();
      clearTimeout(saveTimer);
      save();
    },
    stop() {
      stopped = true;
      clearTimeout(retryTimer);
      close();
      stream.persist();
    },
  };
  subscribe();
  return stream;
}
