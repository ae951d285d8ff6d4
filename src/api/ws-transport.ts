/**
 * graphql-ws on a `ws` WebSocketServer: the library's own `use/ws` bridge (same keep-alive,
 * close codes and error handling), plus two things it cannot do:
 *
 * - **Payloads serialised once.** A result whose `data` is a `PreSerialised` (run-event-fanout.ts:
 *   one JSON text shared by every subscriber of an event) is written as that text. graphql-ws
 *   builds each message as `JSON.stringify({id, type, payload}, replacer)` and hands it straight
 *   to `send` in the same synchronous step; the replacer swaps the shared value for a marker and
 *   `send` splices the text in. Only a `next` whose payload is exactly `{data}` can carry one
 *   (the fan-out never shares a result with errors), so the marker is always the message's tail.
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
  constructor(readonly json: string) {}
}

const MARKER = "\u{1F4E6}incubator-preserialised";
const MARKER_TAIL = `${JSON.stringify(MARKER)}}}`;

/** What the WebSocket writes cost, for `incubator bench events` and metrics. */
export interface TransportStats {
  /** Frames written. */
  sends: number;
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
  const stats: TransportStats = { sends: 0, flushMs: 0, maxFlushMs: 0, maxBufferedBytes: 0 };
  // Set by the replacer, taken by the next `send` (the same synchronous step).
  let pending: string | null = null;
  const server = makeServer({
    ...options,
    jsonMessageReplacer: (_key, value) => {
      if (value instanceof PreSerialised) {
        pending = value.json;
        return MARKER;
      }
      return value;
    },
  });
  const splice = (data: string): string => {
    const json = pending;
    pending = null;
    if (json === null || !data.endsWith(MARKER_TAIL)) return data;
    return `${data.slice(0, -MARKER_TAIL.length)}${json}}}`;
  };

  ws.options.handleProtocols = handleProtocols;
  ws.once("error", () => {
    for (const client of ws.clients) client.close(CloseCode.InternalServerError, "Internal server error");
  });
  ws.on("connection", (socket, request) => {
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
          const data = splice(raw);
          return new Promise<void>((resolve, reject) => {
            if (socket.readyState !== socket.OPEN) return resolve();
            const started = performance.now();
            stats.sends++;
            if (socket.bufferedAmount > stats.maxBufferedBytes)
              stats.maxBufferedBytes = socket.bufferedAmount;
            socket.send(data, (error) => {
              const took = performance.now() - started;
              stats.flushMs += took;
              if (took > stats.maxFlushMs) stats.maxFlushMs = took;
              if (error) reject(error);
              else resolve();
            });
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
