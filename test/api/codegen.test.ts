/** src/generated/graphql.ts (resolver types, written on install) must match schema.graphql. */
import { readFileSync } from "node:fs";
import { generate } from "@graphql-codegen/cli";
import { expect, test } from "vitest";
import config, { GENERATED_PATH } from "../../codegen.ts";

test("the generated resolver types are up to date with schema.graphql (else: npm run codegen)", async () => {
  const [output] = await generate({ ...config, cwd: process.cwd() }, false);
  expect(output?.filename).toBe(GENERATED_PATH);
  expect(readFileSync(GENERATED_PATH, "utf8"), "stale: run npm run codegen").toBe(output?.content);
});
