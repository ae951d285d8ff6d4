import { createRequire } from "node:module";
import { defineConfig } from "vitest/config";

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (index.js) and ESM (index.mjs) without an "exports" map. Node —
    // and so Apollo Server, loaded by Node — takes the CJS one; Vite would hand our sources the
    // .mjs one, and graphql refuses schemas built by "another copy" of itself. Use Node's.
    alias: [{ find: /^graphql$/, replacement: require.resolve("graphql") }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    // Database and ONNX Runtime tests start real services and sessions.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ["test/global-setup.ts"],
    pool: "forks",
  },
});
