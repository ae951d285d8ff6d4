/**
 * The web dashboard's files (ui/, built by scripts/build-ui.mjs into ui/dist) at /ui. The page
 * is public (auth/policy.ts): it holds no data; everything it shows comes from /graphql with the
 * token the user enters in its settings. It is sent with a strict Content-Security-Policy: its
 * own scripts and styles only (nothing inline, no other origin), and connections only to this
 * server (HTTP and WebSocket).
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Express, Request, Response } from "express";
import type { Logger } from "../platform/logger.ts";
import { sendError } from "./errors.ts";

export const DASHBOARD_PATH = "/ui";
/** Where `npm run build:ui` writes the dashboard. */
export const DEFAULT_DASHBOARD_DIR = resolve(import.meta.dirname, "../../ui/dist");

const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
// A Host header that can go into a header verbatim (a name or IP literal, optional port).
const SAFE_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/** The page's policy; `host` adds this server's WebSocket origins (older engines' 'self' omits ws:). */
export function contentSecurityPolicy(host: string | undefined): string {
  const sockets = host && SAFE_HOST.test(host) ? ` ws://${host} wss://${host}` : "";
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

function securityHeaders(req: Request, res: Response): void {
  res.setHeader("content-security-policy", contentSecurityPolicy(req.headers.host));
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("x-frame-options", "DENY");
  res.setHeader("referrer-policy", "no-referrer");
}

/** GET /ui (the page) and GET /ui/assets/<file> (its hashed, immutable scripts and styles). */
export function mountDashboard(app: Express, o: { dir: string; logger: Logger }): void {
  const notBuilt = (req: Request, res: Response) =>
    sendError(
      req,
      res,
      503,
      "DASHBOARD_NOT_BUILT",
      "the dashboard is not built: run `npm run build:ui` (it needs the dev dependencies: `npm install`)",
    );
  const send = (req: Request, res: Response, file: string, cacheControl: string) => {
    securityHeaders(req, res);
    res.sendFile(file, { dotfiles: "deny", headers: { "cache-control": cacheControl } }, (error) => {
      if (!error) return;
      if ((error as NodeJS.ErrnoException).code === "ENOENT" || (error as { status?: number }).status === 404)
        return sendError(req, res, 404, "NOT_FOUND", "no such dashboard file");
      o.logger.error({ err: error }, "dashboard file could not be sent");
      sendError(req, res, 500, "INTERNAL_SERVER_ERROR", "the dashboard file could not be read");
    });
  };
  app.get(DASHBOARD_PATH, (req, res) => {
    const index = join(o.dir, "index.html");
    if (!existsSync(index)) return notBuilt(req, res);
    // The page names its assets by content hash: it must be revalidated, they never change.
    send(req, res, index, "no-cache");
  });
  app.get(`${DASHBOARD_PATH}/assets/:file`, (req, res) => {
    const file = String(req.params.file);
    if (!ASSET_NAME.test(file)) return sendError(req, res, 404, "NOT_FOUND", "no such dashboard file");
    send(req, res, join(o.dir, "assets", file), "public, max-age=31536000, immutable");
  });
}
