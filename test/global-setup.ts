/**
 * One PostgreSQL server for the whole test run: the one DATABASE_URL names (CI sets it to the
 * local server), otherwise an embedded one started here and removed afterwards. Each test file
 * then makes its own scratch database on it (test/helpers/database.ts), so files run in
 * parallel and leave nothing behind.
 */
import type { TestProject } from "vitest/node";
import { openDatabase } from "../src/platform/db/database.ts";

declare module "vitest" {
  export interface ProvidedContext {
    databaseServerUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const handle = await openDatabase({
    databaseUrl: process.env.DATABASE_URL,
    dataDir: `.data/test-${process.pid}`,
    ephemeral: true,
  });
  project.provide("databaseServerUrl", handle.url);
  return async () => {
    await handle.stop();
  };
}
