/**
 * The dashboard's only way to the platform: the GraphQL API on this server (HTTP POST for
 * queries and mutations, graphql-ws for subscriptions), with the token from Settings.
 */
import { type Client, createClient } from "graphql-ws";
import { authHeaders, readToken } from "./settings.ts";

export const GRAPHQL_PATH = "/graphql";

export interface GraphQLErrorEntry {
  message: string;
  extensions?: { code?: string };
}

/** A request the API refused or could not answer; `code` is the GraphQL error code when given. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A query or mutation; throws ApiError on GraphQL or HTTP errors (userErrors are data). */
export async function gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(GRAPHQL_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", ...authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("the API did not answer (is the server running?)", "NETWORK");
  }
  const body = (await response.json().catch(() => null)) as {
    data?: T;
    errors?: GraphQLErrorEntry[];
    error?: string;
    code?: string;
  } | null;
  const first = body?.errors?.[0];
  if (first) throw new ApiError(first.message, first.extensions?.code);
  if (!response.ok || !body?.data)
    throw new ApiError(body?.error ?? `HTTP ${response.status}`, body?.code ?? String(response.status));
  return body.data;
}

/** A graphql-ws client for this server; the caller resubscribes itself (with afterSeq). */
export function subscriptionClient(): Client {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const token = readToken();
  return createClient({
    url: `${scheme}://${location.host}${GRAPHQL_PATH}`,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    lazy: true,
    // Reconnecting is the event stream's job: it must resubscribe with the newest afterSeq,
    // while graphql-ws's own retry would repeat the first subscription's variables.
    retryAttempts: 0,
    keepAlive: 15_000,
  });
}

export interface UserError {
  field: string[] | null;
  message: string;
  code: string;
}

/** A mutation payload: whatever it returns plus its userErrors. */
export type Payload<T> = T & { userErrors: UserError[] };
