/**
 * The dashboard's build: Preact + TypeScript bundled by Vite into ui/dist, which the API serves
 * at /ui (src/api/dashboard.ts). Run by scripts/build-ui.mjs (postinstall, `npm start`, `serve`).
 * Everything is bundled: the page loads nothing from elsewhere, and its Content-Security-Policy
 * allows only this server.
 */
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  base: "/ui/",
  logLevel: "warn",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The polyfill would be an inline script, which the page's CSP refuses (and browsers the
    // page supports have modulepreload).
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
