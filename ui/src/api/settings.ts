/**
 * The API token, as the user entered it in Settings, kept in this browser only (localStorage).
 * Nothing is hard-coded: without a token the page works where the server runs tokenless
 * (loopback local mode) and otherwise asks for one.
 */
const TOKEN_KEY = "incubator.apiToken";

export function readToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return ""; // storage disabled: behave as tokenless
  }
}

export function writeToken(token: string): void {
  const trimmed = token.trim();
  if (trimmed) localStorage.setItem(TOKEN_KEY, trimmed);
  else localStorage.removeItem(TOKEN_KEY);
}

/** `{ authorization: "Bearer …" }`, or nothing without a token. */
export function authHeaders(): Record<string, string> {
  const token = readToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}
