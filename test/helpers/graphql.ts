/**
 * Real clients for tests: GraphQL over HTTP (fetch) and over WebSocket (graphql-ws). They send a
 * bearer token: the one passed in, or the server's default from `useToken` (a real API token,
 * test/helpers/auth.ts); `token: null` sends none.
 */
import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";

const defaultTokens = new Map<string, string>();

/** Send `secret` to the server at `url` (its origin) unless a call names another token. */
export function useToken(url: string, secret: string): void {
  defaultTokens.set(new URL(url).host, secret);
}

/** The token a call to `url` sends: `token` when given (null: none), else the server's default. */
export function tokenFor(url: string | URL, token?: string | null): string | undefined {
  if (token === null) return undefined;
  return token ?? defaultTokens.get(new URL(url).host);
}

/** `{ authorization: "Bearer …" }` for `url` (empty without a token): for fetch on plain routes. */
export function authHeaders(url: string | URL, token?: string | null): Record<string, string> {
  const secret = tokenFor(url, token);
  return secret ? { authorization: `Bearer ${secret}` } : {};
}

export interface GraphQLResponse<T> {
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

export async function postGraphQL<T = Record<string, unknown>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  o: { token?: string | null } = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...authHeaders(url, o.token) },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLResponse<T>;
}

export function wsClient(url: string, o: { token?: string | null } = {}): Client {
  const secret = tokenFor(url, o.token);
  return createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    ...(secret ? { connectionParams: { authorization: `Bearer ${secret}` } } : {}),
  });
}

/** Collect every `next` payload of one subscription until it completes or errors. */
export function collectSubscription<T>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ results: GraphQLResponse<T>[]; error?: unknown }> {
  return new Promise((resolve) => {
    const results: GraphQLResponse<T>[] = [];
    client.subscribe<T>(
      { query, variables },
      {
        next: (value) => results.push(value as GraphQLResponse<T>),
        error: (error) => resolve({ results, error }),
        complete: () => resolve({ results }),
      },
    );
  });
}
