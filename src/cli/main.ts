/**
 * `incubator` — the command line. Each subcommand lives in its own file; this one wires them.
 * Errors a user can fix (bad configuration, unreachable database) end the process with one
 * clear line and exit code 1; anything else prints its stack.
 */
import { Command } from "commander";
import { packageVersion } from "../platform/version.ts";
import { benchCommand } from "./bench.ts";
import { demoCommand } from "./demo.ts";
import { doctorCommand } from "./doctor.ts";
import { exitWithError } from "./errors.ts";
import { incubateCommand, jobCommand, trainCommand } from "./incubate.ts";
import { metaCommand } from "./meta.ts";
import { serveCommand } from "./serve.ts";
import { projectCommand, tokenCommand } from "./token.ts";
import { workerCommand } from "./worker.ts";
import { workerTokenCommand } from "./worker-token.ts";

const program = new Command()
  .name("incubator")
  .description("Train large vision transformers by Deep Incubation, served through a GraphQL API")
  .version(packageVersion())
  .showHelpAfterError();

program.addCommand(serveCommand());
program.addCommand(demoCommand());
program.addCommand(workerCommand());
program.addCommand(workerTokenCommand());
program.addCommand(tokenCommand());
program.addCommand(projectCommand());
program.addCommand(incubateCommand());
program.addCommand(trainCommand());
program.addCommand(jobCommand(), { hidden: true });
program.addCommand(metaCommand());
program.addCommand(benchCommand());
program.addCommand(doctorCommand());

try {
  await program.parseAsync(process.argv);
} catch (error) {
  exitWithError(error);
}
