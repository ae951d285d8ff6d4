/**
 * src/generated/graphql.ts (resolver types) and ui/src/generated/schema.ts (the dashboard's enum
 * types), written on install, must match schema.graphql.
 */
import { readFileSync } from "node:fs";
import { generate } from "@graphql-codegen/cli";
import { expect, test } from "vitest";
import config, { GENERATED_PATH, UI_GENERATED_PATH } from "../../codegen.ts";

test("the generated resolver types are up to date with schema.graphql (else: npm run codegen)", async () => {
  const outputs: { filename: string; content: string }[] = await generate(
    { ...config, cwd: process.cwd() },
    false,
  );
  expect(outputs.map((o) => o.filename).sort()).toEqual([GENERATED_PATH, UI_GENERATED_PATH].sort());
  for (const output of outputs)
    expect(readFileSync(output.filename, "utf8"), `${output.filename} is stale: run npm run codegen`).toBe(
      output.content,
    );
});
