/**
 * graphql-ws on a `ws` WebSocketServer: the library's own `use/ws` bridge (same keep-alive,
 * close codes and error handling), plus two things it cannot do:
 *
 * - **Payloads serialised and encoded once.** A result whose `data` is a `PreSerialised`
 *   (run-event-fanout.ts: one JSON text shared by every subscriber of an event) is written as
 *   that text's bytes, encoded once. graphql-ws builds each message as
 *   `JSON.stringify({id, type, payload}, replacer)` and hands it straight to `send` in the same
 *   synchronous step; the replacer swaps the shared value for a marker. Only a `next` whose
 *   payload is exactly `{data}` can carry one (the fan-out never shares a result with errors),
 *   so the marker is always the message's tail: the message goes out as two WebSocket frames of
 *   one message (RFC 6455 fragmentation, which every client reassembles), the subscriber's own
 *   head `{"id":"…","type":"next","payload":{"data":` and the shared bytes. Splicing the text
 *   into each subscriber's string instead cost a string and a buffer of the payload's size per
 *   delivery — at thousands of subscribers the API's main GC load.
 * - **Direct writes for shared events (`Outlet`).** graphql-ws delivers each subscription's
 *   results through its own loop: per delivery an async-iterator step, `onNext`, a message
 *   `JSON.stringify`, a Promise and a flush callback. For `runEvents` the fan-out writes instead:
 *   every operation this transport starts gets an `Outlet` (its socket, its id, its message
 *   head encoded once), found by the fan-out with `outletOf(args)`, and a shared event is
 *   written to all of an event's outlets in one pass (run-event-fanout.ts), each socket with
 *   one corked write — one syscall for the message's two frames. graphql-ws still owns the
 *   protocol: connection_init, subscribe, complete and error, and the operation's end (the
 *   fan-out's iterator ends only after its last event was written, so `complete` and `error`
 *   follow the data on the same socket). A result of a subscriber's own (one with errors) goes
 *   through `Outlet.next`, graphql-ws's own `next` step with this server's `onNext`.
 * - **Write back-pressure measured.** `send` resolves when the socket has flushed the frame, so
 *   a slow consumer holds only its own subscription loop (graphql-ws awaits each send). A
 *   direct write does not wait: its backlog is the socket's `bufferedAmount`, which the fan-out
 *   bounds per subscription (a consumer too far behind is cut off with a resume point).
 *
 * Per-message deflate stays off (`ws`'s server default; server.ts does not enable it): a shared
 * continuation frame is the same bytes for every socket only without per-socket compression.
 */
import type { IncomingMessage } from "node:http";
import type { ExecutionArgs, ExecutionResult, GraphQLError } from "graphql";
import {
  CloseCode,
  type ConnectionInitMessage,
  type Context,
  handleProtocols,
  MessageType,
  makeServer,
  type ServerOptions,
  type SubscribePayload,
  stringifyMessage,
} from "graphql-ws";
import type { WebSocket, WebSocketServer } from "ws";

/** What graphql-ws's context carries for a connection (as its own `use/ws`). */
interface Extra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}
type Options = ServerOptions<ConnectionInitMessage["payload"], Extra>;
type Ctx = Context<ConnectionInitMessage["payload"], Extra>;

/** Each operation's outlet, by the execution arguments its `onSubscribe` returned (the object graphql-ws hands to `subscribe`). */
const outlets = new WeakMap<object, Outlet>();

/** The outlet of the operation `args` belong to, when this transport started it. */
export function outletOf(args: ExecutionArgs): Outlet | undefined {
  return outlets.get(args);
}

/**
 * One graphql-ws operation's way out to its socket, for deliveries made outside graphql-ws's
 * per-operation loop (run-event-fanout.ts). Only `next` messages go this way; the operation's
 * end (`complete`, `error`) stays with graphql-ws.
 */
export class Outlet {
  /** `{"id":…,"type":"next","payload":{"data":` as bytes: the same for every event of this operation. */
  private readonly head: Buffer;

  constructor(
    private readonly ctx: Ctx,
    readonly id: string,
    private readonly payload: SubscribePayload,
    private readonly options: Options,
    private readonly sendMessage: (raw: string) => Promise<void>,
    private readonly stats: TransportStats,
  ) {
    this.head = Buffer.from(`{"id":${JSON.stringify(id)},"type":"${MessageType.Next}","payload":{"data":`);
  }

  private get socket(): WebSocket {
    return this.ctx.extra.socket;
  }

  /** The socket is open and the client has not completed the operation. */
  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN && this.id in this.ctx.subscriptions;
  }

  /** Bytes written to this operation's socket (by any operation on it) that the kernel has not taken yet. */
  get bufferedAmount(): number {
    const buffered = this.socket.bufferedAmount;
    if (buffered > this.stats.maxBufferedBytes) this.stats.maxBufferedBytes = buffered;
    return buffered;
  }

  /**
   * A shared event as this operation's `next` message: its own head frame and the shared tail
   * as the continuation frame, corked into one write (one syscall; `ws` writes each frame with
   * its own cork otherwise). Synchronous, so no other frame of the socket comes between them.
   */
  writeShared(shared: PreSerialised): void {
    const socket = this.socket;
    corked(socket, () => {
      socket.send(this.head, { binary: false, fin: false });
      socket.send(shared.tail, { binary: false, fin: true });
    });
    this.stats.directWrites++;
  }

  /** A result of this subscriber's own (not shared): graphql-ws's `next` step, with the server's `onNext`. */
  async next(args: ExecutionArgs, result: ExecutionResult): Promise<void> {
    const { errors, ...withoutErrors } = result;
    const replaced = await this.options.onNext?.(
      this.ctx,
      this.id,
      this.payload,
      args,
      result as Parameters<NonNullable<Options["onNext"]>>[4],
    );
    await this.sendMessage(
      stringifyMessage({
        id: this.id,
        type: MessageType.Next,
        payload: replaced || {
          ...withoutErrors,
          ...(errors ? { errors: errors.map((e) => (e as GraphQLError).toJSON()) } : {}),
        },
      }),
    );
  }
}

/** A JSON value already serialised; written verbatim by this transport. */
export class PreSerialised {
  private bytes: Buffer | null = null;
  constructor(readonly json: string) {}
  /** The message's tail as written: this JSON and the two braces that close `payload` and the message. */
  get tail(): Buffer {
    this.bytes ??= Buffer.from(`${this.json}}}`);
    return this.bytes;
  }
}

/**
 * `write`'s frames as one write to the kernel. `_socket` is ws's net.Socket (not in its types);
 * cork nests, so ws's own per-frame cork/uncork inside `send` flushes nothing until this uncork.
 */
function corked(socket: WebSocket, write: () => void): void {
  const raw = (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  raw?.cork();
  try {
    write();
  } finally {
    raw?.uncork();
  }
}

const MARKER = "\u{1F4E6}incubator-preserialised";
const MARKER_TAIL = `${JSON.stringify(MARKER)}}}`;

/** What the WebSocket writes cost, for `incubator bench events` and metrics. */
export interface TransportStats {
  /** Messages written by graphql-ws (protocol messages, and results not shared). */
  sends: number;
  /** Shared `next` messages written directly (`Outlet.writeShared`; no flush callback, so not in `flushMs`). */
  directWrites: number;
  /** WebSocket connections open now, and ever accepted (for the bench's connect-phase progress). */
  openConnections: number;
  acceptedConnections: number;
  /** Milliseconds from `send` to the frame being flushed to the kernel, summed, and the worst. */
  flushMs: number;
  maxFlushMs: number;
  /** Largest `bufferedAmount` seen on one socket at a send (bytes queued in user space). */
  maxBufferedBytes: number;
}

export interface GraphqlWsTransport {
  dispose(): Promise<void>;
  readonly stats: TransportStats;
}

const KEEP_ALIVE_MS = 12_000;

export function useGraphqlWs(
  options: Omit<Options, "jsonMessageReplacer">,
  ws: WebSocketServer,
): GraphqlWsTransport {
  const stats: TransportStats = {
    sends: 0,
    directWrites: 0,
    openConnections: 0,
    acceptedConnections: 0,
    flushMs: 0,
    maxFlushMs: 0,
    maxBufferedBytes: 0,
  };
  // Set by the replacer, taken by the next `send` (the same synchronous step).
  let pending: PreSerialised | null = null;
  /** Each connection's `send`, by its graphql-ws context (for `Outlet.next`). */
  const senders = new WeakMap<object, (raw: string) => Promise<void>>();
  const server = makeServer({
    ...options,
    // The operation's execution arguments get an outlet, for the fan-out's direct writes.
    onSubscribe: async (ctx, id, payload) => {
      const args = await options.onSubscribe?.(ctx, id, payload);
      const send = senders.get(ctx.extra);
      if (args && !Array.isArray(args) && send)
        outlets.set(args, new Outlet(ctx, id, payload, options, send, stats));
      return args;
    },
    jsonMessageReplacer: (_key, value) => {
      if (value instanceof PreSerialised) {
        pending = value;
        return MARKER;
      }
      return value;
    },
  });
  /** A message carrying a shared payload, as its own head and the shared tail; null for any other. */
  const split = (data: string): { head: string; tail: Buffer } | null => {
    const shared = pending;
    pending = null;
    if (shared === null || !data.endsWith(MARKER_TAIL)) return null;
    return { head: data.slice(0, -MARKER_TAIL.length), tail: shared.tail };
  };

  ws.options.handleProtocols = handleProtocols;
  ws.once("error", () => {
    for (const client of ws.clients) client.close(CloseCode.InternalServerError, "Internal server error");
  });
  ws.on("connection", (socket, request) => {
    stats.openConnections++;
    stats.acceptedConnections++;
    socket.once("error", () => socket.close(CloseCode.InternalServerError, "Internal server error"));
    let pongWait: NodeJS.Timeout | null = null;
    const pingInterval = setInterval(() => {
      if (socket.readyState !== socket.OPEN) return;
      pongWait = setTimeout(() => socket.terminate(), KEEP_ALIVE_MS);
      socket.once("pong", () => {
        if (pongWait) clearTimeout(pongWait);
        pongWait = null;
      });
      socket.ping();
    }, KEEP_ALIVE_MS);
    const extra: Extra = { socket, request };
    const send = (raw: string): Promise<void> => {
      const shared = split(raw);
      return new Promise<void>((resolve, reject) => {
        if (socket.readyState !== socket.OPEN) return resolve();
        const started = performance.now();
        stats.sends++;
        if (socket.bufferedAmount > stats.maxBufferedBytes) stats.maxBufferedBytes = socket.bufferedAmount;
        const flushed = (error?: Error) => {
          const took = performance.now() - started;
          stats.flushMs += took;
          if (took > stats.maxFlushMs) stats.maxFlushMs = took;
          if (error) reject(error);
          else resolve();
        };
        if (shared === null) return socket.send(raw, flushed);
        // Consecutive calls in one synchronous step: no other frame of this socket comes between.
        corked(socket, () => {
          socket.send(shared.head, { fin: false });
          socket.send(shared.tail, { binary: false, fin: true }, flushed);
        });
      });
    };
    senders.set(extra, send);
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send,
        close: (code, reason) => socket.close(code, reason),
        onMessage: (cb) =>
          socket.on("message", async (event) => {
            try {
              await cb(String(event));
            } catch {
              socket.close(CloseCode.InternalServerError, "Internal server error");
            }
          }),
      },
      extra,
    );
    socket.once("close", (code, reason) => {
      stats.openConnections--;
      if (pongWait) clearTimeout(pongWait);
      clearInterval(pingInterval);
      void closed(code, String(reason));
    });
  });
  return {
    stats,
    dispose: async () => {
      for (const client of ws.clients) client.close(1001, "Going away");
      ws.removeAllListeners();
      await new Promise<void>((resolve, reject) => ws.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
