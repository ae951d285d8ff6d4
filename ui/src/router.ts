/**
 * Hash routes (#/runs, #/runs/<id>, #/start, #/settings): the server serves one page at /ui and
 * the browser's back button and reload keep the view.
 */
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "runs"; state: string | null }
  | { page: "run"; id: string }
  | { page: "start" }
  | { page: "settings" };

export function parseRoute(hash: string): Route {
  const [path = "", query = ""] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "runs" && parts[1]) return { page: "run", id: decodeURIComponent(parts[1]) };
  if (parts[0] === "start") return { page: "start" };
  if (parts[0] === "settings") return { page: "settings" };
  return { page: "runs", state: new URLSearchParams(query).get("state") };
}

export const href = {
  runs: (state?: string | null) => (state ? `#/runs?state=${state}` : "#/runs"),
  run: (id: string) => `#/runs/${encodeURIComponent(id)}`,
  start: () => "#/start",
  settings: () => "#/settings",
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

/** Re-run `load` every `ms` while the tab is visible (and once at once). */
export function usePolling(load: () => void, ms: number, deps: readonly unknown[]): void {
  useEffect(() => {
    load();
    const timer = setInterval(() => {
      if (!document.hidden) load();
    }, ms);
    return () => clearInterval(timer);
  }, deps);
}
