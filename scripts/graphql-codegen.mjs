// postinstall: generate the GraphQL resolver types (src/generated/graphql.ts) from schema.graphql
// with codegen.ts. They are types only, so an install without dev dependencies (no
// @graphql-codegen/cli) skips this and still runs.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

if (!existsSync("node_modules/@graphql-codegen/cli")) {
  console.log("graphql-codegen: @graphql-codegen/cli not installed, resolver types not generated");
  process.exit(0);
}
const result = spawnSync("npx", ["--no-install", "graphql-codegen", "--config", "codegen.ts"], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
