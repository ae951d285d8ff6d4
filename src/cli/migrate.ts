/**
 * `incubator migrate`: apply the database migrations and exit. Every process that opens the
 * platform (`serve`, database workers, `token`) migrates at start under an advisory lock anyway;
 * this is the same step on its own, for deployments that migrate once before rolling out
 * (the Kubernetes migration Job, `docker/k8s/migrate-job.yaml`).
 */
import { Command } from "commander";
import { checkReachable, redactUrl } from "../platform/db/database.ts";
import { migrate } from "../platform/db/migrate.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";

export function migrateCommand(): Command {
  return new Command("migrate")
    .description("apply the database migrations to DATABASE_URL and exit (serve also does this at start)")
    .action(async () => {
      const config = loadConfigOrExit();
      if (!config.DATABASE_URL)
        exitWithError(
          new Error(
            "DATABASE_URL: migrate needs the platform's database; without DATABASE_URL the embedded database is migrated by `incubator serve` itself",
          ),
        );
      try {
        await checkReachable(config.DATABASE_URL);
        const result = await migrate(config.DATABASE_URL);
        process.stderr.write(
          `${redactUrl(config.DATABASE_URL)}: ${result.applied.length} migration(s) applied${result.applied.length ? ` (${result.applied.join(", ")})` : ""}, ${result.alreadyApplied} already applied\n`,
        );
      } catch (error) {
        exitWithError(error);
      }
    });
}
