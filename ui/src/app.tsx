/** The page's frame: navigation, the current view, and focus moved to its heading on navigation. */
import { useEffect, useRef } from "preact/hooks";
import { RunPage } from "./pages/run-page.tsx";
import { RunsList } from "./pages/runs-list.tsx";
import { SettingsPage } from "./pages/settings.tsx";
import { StartRunPage } from "./pages/start-run.tsx";
import { href, useRoute } from "./router.ts";

export function App() {
  const route = useRoute();
  const firstView = useRef(true);
  useEffect(() => {
    // After a navigation, keyboard and screen-reader users land on the new view's heading, not
    // at the old link; a fresh load starts at the top (skip link, navigation) as usual.
    if (firstView.current) firstView.current = false;
    else document.querySelector<HTMLElement>("main h1")?.focus();
  }, [route.page, route.page === "run" ? route.id : null]);
  return (
    <>
      <header class="top">
        <a class="brand" href={href.runs()}>
          incubator
        </a>
        <nav aria-label="Main">
          <a href={href.runs()} aria-current={route.page === "runs" ? "page" : undefined}>
            Runs
          </a>
          <a href={href.start()} aria-current={route.page === "start" ? "page" : undefined}>
            Start a run
          </a>
          <a href={href.settings()} aria-current={route.page === "settings" ? "page" : undefined}>
            Settings
          </a>
        </nav>
      </header>
      <main id="main">
        {route.page === "runs" && <RunsList state={route.state} />}
        {route.page === "run" && <RunPage key={route.id} id={route.id} />}
        {route.page === "start" && <StartRunPage />}
        {route.page === "settings" && <SettingsPage />}
      </main>
    </>
  );
}
