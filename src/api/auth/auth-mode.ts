/**
 * Zero-setup stays zero-setup, and only on loopback. `AUTH_MODE`:
 * - `auto` (what `npm start` / `serve` use): listening on loopback only → local mode, no token
 *   needed, said in one log line; on any other address → tokens, and start-up is refused with
 *   one line saying how to create an admin token while none exists;
 * - `tokens`: every call needs a token, also on loopback (tests use this);
 * - `local`: no token needed; refused unless listening on loopback.
 */
import { activeAdminTokenExists, CREATE_ADMIN_TOKEN_HINT } from "../../platform/auth/api-tokens.ts";
import type { AuthSetting } from "../../platform/auth/auth-settings.ts";
import type { Db } from "../../platform/db/client.ts";
import type { Logger } from "../../platform/logger.ts";
import type { AuthMode } from "./principal.ts";

export type { AuthSetting } from "../../platform/auth/auth-settings.ts";

/** A start-up refusal the user fixes by configuration (printed as one line). */
export class AuthSetupError extends Error {
  override name = "AuthSetupError";
}

export const isLoopback = (host: string) => /^(localhost|127(?:\.\d{1,3}){3}|::1|\[::1\])$/i.test(host);

export async function resolveAuthMode(o: {
  db: Db;
  logger: Logger;
  host: string;
  setting: AuthSetting;
}): Promise<AuthMode> {
  const loopback = isLoopback(o.host);
  if (o.setting === "local" || (o.setting === "auto" && loopback)) {
    if (!loopback) {
      throw new AuthSetupError(
        `AUTH_MODE=local serves without tokens, so only on loopback, not HOST=${o.host}: set HOST=127.0.0.1, or ${CREATE_ADMIN_TOKEN_HINT} and use AUTH_MODE=auto`,
      );
    }
    o.logger.warn(
      { host: o.host, auth: "local" },
      `local mode: no token needed, listening on loopback (${o.host}) only; to serve a network set HOST and ${CREATE_ADMIN_TOKEN_HINT}`,
    );
    return "local";
  }
  if (!loopback && !(await activeAdminTokenExists(o.db))) {
    throw new AuthSetupError(
      `refusing to listen on ${o.host} without authentication: no admin token exists; ${CREATE_ADMIN_TOKEN_HINT} (or listen on loopback only: HOST=127.0.0.1)`,
    );
  }
  o.logger.info({ host: o.host, auth: "tokens" }, "API tokens required (Authorization: Bearer inc_at_…)");
  return "tokens";
}
