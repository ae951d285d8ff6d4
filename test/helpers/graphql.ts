/** Real clients for tests: GraphQL over HTTP (fetch) and over WebSocket (graphql-ws). */
import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";

export interface GraphQLResponse<T> {
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

export async function postGraphQL<T = Record<string, unknown>>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLResponse<T>;
}

export function wsClient(url: string): Client {
  return createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true });
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
