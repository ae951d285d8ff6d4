/** A migrated scratch database for one test file, dropped when the file's tests are done. */
import { afterAll, beforeAll, inject } from "vitest";
import { createDb, type Db } from "../../src/platform/db/client.ts";
import { migrate } from "../../src/platform/db/migrate.ts";
import { createScratchDatabase, type ScratchDatabase } from "../../src/platform/db/scratch.ts";

export interface TestDatabase {
  url: string;
  db: Db;
}

/** Call at the top of a test file; the returned object is filled in before the tests run. */
export function useTestDatabase(): TestDatabase {
  const handle = {} as TestDatabase;
  let scratch: ScratchDatabase | undefined;
  beforeAll(async () => {
    scratch = await createScratchDatabase(inject("databaseServerUrl"), "incubator_test");
    await migrate(scratch.url);
    handle.url = scratch.url;
    handle.db = createDb(scratch.url);
  });
  afterAll(async () => {
    await handle.db?.$disconnect();
    await scratch?.drop();
  });
  return handle;
}
