/**
 * `incubator worker-token create --name site-a [--labels site=a]` and `… revoke --name site-a`:
 * manage the tokens workers at other sites use with `incubator worker --api`. Talks to the
 * platform's database like `serve` does (DATABASE_URL, or the embedded one under DATA_DIR).
 */
import { Command } from "commander";
import { createWorkerToken, workerTokenInputProblem } from "../platform/auth/worker-tokens.ts";
import { createLogger } from "../platform/logger.ts";
import { openPlatform, type Platform } from "../platform/platform.ts";
import { parseLabels } from "../platform/queue/placement.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";

export async function withPlatform(work: (platform: Platform) => Promise<void>): Promise<void> {
  const config = loadConfigOrExit();
  const platform = await openPlatform({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    logger: createLogger(config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL, "cli"),
  });
  try {
    await work(platform);
  } finally {
    await platform.close();
  }
}

export function workerTokenCommand(): Command {
  const command = new Command("worker-token").description(
    "manage worker tokens for workers that reach the platform through its API (incubator worker --api)",
  );
  command
    .command("create")
    .description("create a token; its secret is printed once, on stdout")
    .requiredOption("--name <name>", "unique name, e.g. the site: site-a")
    .option("--labels <list>", "labels its workers may have, e.g. site=a,gpu=h100")
    .action(async (opts: { name: string; labels?: string }) => {
      let labels: string[] = [];
      try {
        labels = parseLabels(opts.labels);
      } catch (error) {
        exitWithError(error);
      }
      const problem = workerTokenInputProblem({ name: opts.name, labels });
      if (problem) exitWithError(new Error(`--${problem.field[0]}: ${problem.message}`));
      await withPlatform(async ({ db }) => {
        if (await db.workerToken.findUnique({ where: { name: opts.name } })) {
          exitWithError(new Error(`--name: a worker token named "${opts.name}" already exists`));
        }
        const { secret } = await createWorkerToken(db, { name: opts.name, labels });
        process.stderr.write(
          `worker token "${opts.name}" (labels: ${labels.join(",") || "none"}); keep it secret, it is not shown again:\n`,
        );
        process.stdout.write(`${secret}\n`);
      });
    });
  command
    .command("revoke")
    .description("revoke a token: its workers are refused from their next call")
    .requiredOption("--name <name>", "the token's name")
    .action(async (opts: { name: string }) => {
      await withPlatform(async ({ db }) => {
        const revoked = await db.workerToken.updateMany({
          where: { name: opts.name, revokedAt: null },
          data: { revokedAt: new Date() },
        });
        if (revoked.count === 0)
          exitWithError(new Error(`--name: no active worker token named "${opts.name}"`));
        process.stderr.write(`revoked worker token "${opts.name}"\n`);
      });
    });
  return command;
}
