/**
 * What clients see when something goes wrong, on every route: JSON bodies `{ error, code,
 * requestId }` (never Express's HTML page or a stack), a request id on every response
 * (`x-request-id`: a sane incoming one is kept, otherwise one is made), and GraphQL errors that
 * the server did not mean for the client ("internal") masked as "Internal server error" with
 * `extensions: { code: "INTERNAL_SERVER_ERROR", requestId }` and logged in full with the same id.
 */
import { randomUUID } from "node:crypto";
import type { ApolloServerPlugin } from "@apollo/server";
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from "express";
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import type { Logger } from "../platform/logger.ts";

export const REQUEST_ID_HEADER = "x-request-id";
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
export const INTERNAL_MESSAGE = "Internal server error";

/** The request id of an HTTP request (set by `requestIdMiddleware`). */
export function requestIdOf(req: Request): string {
  return (req as Request & { requestId?: string }).requestId ?? "unknown";
}

export function newRequestId(incoming?: unknown): string {
  return typeof incoming === "string" && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
}

export function requestIdMiddleware(): RequestHandler {
  return (req, res, next) => {
    const id = newRequestId(req.headers[REQUEST_ID_HEADER]);
    (req as Request & { requestId?: string }).requestId = id;
    res.setHeader(REQUEST_ID_HEADER, id);
    next();
  };
}

/** A JSON error answer; `code` is machine-readable, `error` says what to do. */
export function sendError(
  req: Request,
  res: Response,
  status: number,
  code: string,
  error: string,
  /** Facts a client may act on, e.g. a quota's usage and limit in bytes. */
  extra: Record<string, number | string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(status).json({ error, code, ...extra, requestId: requestIdOf(req) });
}

const CODE_OF_STATUS: Record<number, string> = {
  400: "BAD_REQUEST",
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  406: "NOT_ACCEPTABLE",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  422: "UNPROCESSABLE",
};

/**
 * Apollo Server answers some HTTP-level refusals (CSRF prevention, a mutation over GET, a bad
 * request shape) with a plain-text body; this turns any non-JSON error body on the route into
 * the JSON shape above.
 */
export function jsonErrorBodies(): RequestHandler {
  return (req, res, next) => {
    const send = res.send.bind(res);
    res.send = (body?: unknown) => {
      const type = String(res.getHeader("content-type") ?? "");
      if (res.statusCode >= 400 && !/json/.test(type)) {
        res.setHeader("content-type", "application/json; charset=utf-8");
        const text = typeof body === "string" ? body.trim() : "";
        const status = res.statusCode >= 500 ? 400 : res.statusCode;
        res.statusCode = status;
        return send(
          JSON.stringify({
            error: text && !/\/|\bat\s/.test(text) ? text : "the request was refused",
            code: CODE_OF_STATUS[status] ?? "BAD_REQUEST",
            requestId: requestIdOf(req),
          }),
        );
      }
      return send(body as never);
    };
    next();
  };
}

/** 405 with `Allow` for a known path asked with another method. */
export function methodNotAllowed(allowed: string[]): RequestHandler {
  return (req, res) => {
    res.setHeader("allow", allowed.join(", "));
    sendError(
      req,
      res,
      405,
      "METHOD_NOT_ALLOWED",
      `${req.method} is not allowed here; use ${allowed.join(" or ")}`,
    );
  };
}

export function notFound(): RequestHandler {
  return (req, res) => sendError(req, res, 404, "NOT_FOUND", "no such route; the GraphQL API is at /graphql");
}

/** Body-parser errors by their `type`: what to tell the client. */
const BODY_ERRORS: Record<string, [number, string, string]> = {
  "entity.parse.failed": [400, "BAD_REQUEST", "the body is not valid JSON"],
  "entity.too.large": [413, "PAYLOAD_TOO_LARGE", "the body is larger than the server accepts"],
  "encoding.unsupported": [415, "UNSUPPORTED_MEDIA_TYPE", "unsupported content encoding"],
  "charset.unsupported": [415, "UNSUPPORTED_MEDIA_TYPE", "unsupported charset; send UTF-8 JSON"],
  "request.aborted": [400, "BAD_REQUEST", "the request was aborted"],
  "request.size.invalid": [400, "BAD_REQUEST", "the body is shorter or longer than its content-length"],
};

/** The last handler: JSON for every error Express sees, details only in the log. */
export function errorHandler(logger: Logger, limits: { maxBodyBytes: number }): ErrorRequestHandler {
  return (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const type = (error as { type?: unknown })?.type;
    const known = typeof type === "string" ? BODY_ERRORS[type] : undefined;
    if (known) {
      const [status, code, message] = known;
      const detail = status === 413 ? `${message} (at most ${limits.maxBodyBytes} bytes)` : message;
      sendError(req, res, status, code, detail);
      return;
    }
    const status = Number((error as { status?: unknown; statusCode?: unknown })?.status ?? 500);
    if (status >= 400 && status < 500) {
      sendError(req, res, status, CODE_OF_STATUS[status] ?? "BAD_REQUEST", "the request was refused");
      return;
    }
    logger.error({ err: error, requestId: requestIdOf(req), path: req.path }, "request failed");
    sendError(req, res, 500, "INTERNAL_SERVER_ERROR", INTERNAL_MESSAGE);
  };
}

/** Whether a GraphQL error is one the server did not mean for the client. */
export function isInternal(error: GraphQLError): boolean {
  const code = error.extensions?.code;
  if (code === "INTERNAL_SERVER_ERROR") return true;
  if (code) return false;
  // A resolver threw something that is not a GraphQLError, or graphql-js failed while executing
  // (a null for a non-null field): both have a path. Errors without one are about the request.
  return (
    error.path !== undefined ||
    (error.originalError !== undefined && !(error.originalError instanceof GraphQLError))
  );
}

/** One GraphQL error for a client of the WebSocket transport (Apollo does the same over HTTP). */
export function clientError(error: GraphQLError, requestId: string, logger: Logger): GraphQLFormattedError {
  if (isInternal(error)) {
    logger.error(
      { err: error.originalError ?? error, requestId, path: error.path },
      "GraphQL operation failed",
    );
    return {
      message: INTERNAL_MESSAGE,
      ...(error.path ? { path: error.path } : {}),
      extensions: { code: "INTERNAL_SERVER_ERROR", requestId },
    };
  }
  const json = error.toJSON();
  return { ...json, extensions: { ...json.extensions, code: json.extensions?.code ?? "BAD_USER_INPUT" } };
}

/** Masks and logs internal errors over HTTP; the context carries the request id. */
export function maskInternalErrors(logger: Logger): ApolloServerPlugin<{ requestId: string }> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue }) {
          for (const error of errors) {
            if (isInternal(error)) {
              logger.error(
                { err: error.originalError ?? error, requestId: contextValue.requestId, path: error.path },
                "GraphQL operation failed",
              );
            }
          }
        },
        async willSendResponse({ response, contextValue }) {
          if (response.body.kind !== "single" || !response.body.singleResult.errors) return;
          response.body.singleResult.errors = response.body.singleResult.errors.map((e) =>
            e.extensions?.code === "INTERNAL_SERVER_ERROR"
              ? {
                  message: INTERNAL_MESSAGE,
                  ...(e.path ? { path: e.path } : {}),
                  extensions: { code: "INTERNAL_SERVER_ERROR", requestId: contextValue.requestId },
                }
              : e,
          );
        },
      };
    },
  };
}
