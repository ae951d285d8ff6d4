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
 * - **Write back-pressure measured.** `send` resolves when the socket has flushed the frame, so
 *   a slow consumer holds only its own subscription loop (graphql-ws awaits each send); events
 *   then wait in that subscription's bounded hub queue (event-hub.ts), never in others'.
 */
import type { IncomingMessage } from "node:http";
import {
  CloseCode,
  type ConnectionInitMessage,
  handleProtocols,
  makeServer,
  type ServerOptions,
} from "graphql-ws";
import type { WebSocket, WebSocketServer } from "ws";

/** What graphql-ws's context carries for a connection (as its own `use/ws`). */
interface Extra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}
type Options = ServerOptions<ConnectionInitMessage["payload"], Extra>;

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

const MARKER = "\u{1F4E6}incubator-preserialised";
const MARKER_TAIL = `${JSON.stringify(MARKER)}}}`;

/** What the WebSocket writes cost, for `incubator bench events` and metrics. */
export interface TransportStats {
  /** Messages written. */
  sends: number;
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
    openConnections: 0,
    acceptedConnections: 0,
    flushMs: 0,
    maxFlushMs: 0,
    maxBufferedBytes: 0,
  };
  // Set by the replacer, taken by the next `send` (the same synchronous step).
  let pending: PreSerialised | null = null;
  const server = makeServer({
    ...options,
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
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (raw) => {
          const shared = split(raw);
          return new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            const started = performance.now();
            stats.sends++;
            if (socket.bufferedAmount > stats.maxBufferedBytes)
              stats.maxBufferedBytes = socket.bufferedAmount;
            const flushed = (error?: Error) => {
              const took = performance.now() - started;
              stats.flushMs += took;
              if (took > stats.maxFlushMs) stats.maxFlushMs = took;
              if (error) reject(error);
              else resolve();
            };
            if (shared === null) return socket.send(raw, flushed);
            // Consecutive calls in one synchronous step: no other frame of this socket comes between.
            socket.send(shared.head, { fin: false });
            socket.send(shared.tail, { binary: false, fin: true }, flushed);
          });
        },
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
      { socket, request },
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
