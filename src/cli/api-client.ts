/**
 * How client commands (`incubator compare <run-id>`, `incubator worker --api`) reach a running
 * platform's GraphQL API: the URL (`--api`, else INCUBATOR_API, else the local server on PORT)
 * and the token (`--token`, else an environment variable). One POST per query; failures come
 * back as `ApiClientError`s whose `kind` says which fix applies.
 */

/** The API's GraphQL URL when `--api` is not given (the same variable the worker units use). */
export const API_URL_ENV = "INCUBATOR_API";
/** An API token (inc_at_…) for client commands when `--token` is not given. */
export const API_TOKEN_ENV = "INCUBATOR_TOKEN";

/** Why `url` cannot be the API's GraphQL endpoint, or null. */
export function apiUrlProblem(url: string): string | null {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return null;
  } catch {}
  return `"${url}" is not a URL; give the API's GraphQL endpoint, e.g. http://host:4000/graphql`;
}

export interface ApiTarget {
  url: string;
  /** Absent: no token (a loopback server in local mode needs none). */
  token?: string;
}

/**
 * The API a client command talks to. `port`: the local server's (PORT, default 4000), used
 * when neither `--api` nor INCUBATOR_API is set. Throws on a malformed URL, naming `--api`.
 */
export function apiTarget(
  flags: { api?: string; token?: string },
  env: NodeJS.ProcessEnv = process.env,
): ApiTarget {
  const fromEnv = env[API_URL_ENV]?.trim();
  const url = flags.api ?? (fromEnv || `http://127.0.0.1:${env.PORT?.trim() || 4000}/graphql`);
  const problem = apiUrlProblem(url);
  if (problem) throw new Error(`${flags.api !== undefined ? "--api" : API_URL_ENV}: ${problem}`);
  const token = flags.token ?? (env[API_TOKEN_ENV]?.trim() || undefined);
  return token ? { url, token } : { url };
}

export type ApiFailure = "unreachable" | "refused" | "query";

export class ApiClientError extends Error {
  constructor(
    readonly kind: ApiFailure,
    message: string,
  ) {
    super(message);
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

const REFUSED_CODES = new Set(["UNAUTHENTICATED", "FORBIDDEN"]);

/** One GraphQL request; its data, or an ApiClientError (unreachable, token refused, query error). */
export async function queryApi<T>(
  api: ApiTarget,
  query: string,
  variables: Record<string, unknown>,
  timeoutMs = 30_000,
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(api.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(api.token ? { authorization: `Bearer ${api.token}` } : {}),
      },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error).message;
    throw new ApiClientError("unreachable", `cannot reach the API at ${api.url} (${reason})`);
  }
  let body: GraphQLResponse<T>;
  try {
    body = (await response.json()) as GraphQLResponse<T>;
  } catch {
    throw new ApiClientError(
      "unreachable",
      `${api.url} answered HTTP ${response.status} without a GraphQL response; is it the API's /graphql endpoint?`,
    );
  }
  const first = body.errors?.[0];
  if (first) {
    const refused =
      response.status === 401 || response.status === 403 || REFUSED_CODES.has(first.extensions?.code ?? "");
    throw new ApiClientError(refused ? "refused" : "query", first.message);
  }
  if (!body.data)
    throw new ApiClientError("query", `${api.url} answered HTTP ${response.status} with no data`);
  return body.data;
}
