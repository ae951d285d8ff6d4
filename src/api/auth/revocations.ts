/**
 * Revocation pushed to open WebSocket connections: the API server LISTENs on
 * API_TOKEN_REVOKED_CHANNEL (platform/auth/api-tokens.ts `revokeApiToken` NOTIFYs at commit) and
 * closes every connection of the revoked token here at once, with the FORBIDDEN close code 4403.
 * The periodic re-check of open subscriptions (apply-policies.ts) stays as the safety net for a
 * notice this process missed (its LISTEN connection was down).
 */

/** The part of a ws socket this needs. */
export interface ClosableSocket {
  close(code: number, reason: string): void;
  once(event: "close", listener: () => void): void;
}

/** WebSocket close codes of auth refusals (documented in README "Security"). */
export const WS_CLOSE = { UNAUTHENTICATED: 4401, FORBIDDEN: 4403 } as const;

export class TokenConnections {
  private readonly byToken = new Map<string, Set<ClosableSocket>>();

  /** Track a connection authenticated with API token `tokenId` until it closes. */
  add(tokenId: string, socket: ClosableSocket): void {
    const sockets = this.byToken.get(tokenId) ?? new Set();
    sockets.add(socket);
    this.byToken.set(tokenId, sockets);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0 && this.byToken.get(tokenId) === sockets) this.byToken.delete(tokenId);
    });
  }

  /** Close the token's connections (4403); returns how many. */
  revoked(tokenId: string): number {
    const sockets = this.byToken.get(tokenId);
    if (!sockets) return 0;
    this.byToken.delete(tokenId);
    for (const socket of sockets) socket.close(WS_CLOSE.FORBIDDEN, "FORBIDDEN: the API token was revoked");
    return sockets.size;
  }
}
