/**
 * The `incubator` command tree. main.ts parses argv with it; tests read it to check that the
 * deployment files (docker/, workers/) call only subcommands and options that exist.
 */
import { Command } from "commander";
import { packageVersion } from "../platform/version.ts";
import { benchCommand } from "./bench.ts";
import { compareCommand } from "./compare.ts";
import { demoCommand } from "./demo.ts";
import { doctorCommand } from "./doctor.ts";
import { evalStagesCommand } from "./eval-stages.ts";
import { incubateCommand, jobCommand, trainCommand } from "./incubate.ts";
import { metaCommand } from "./meta.ts";
import { migrateCommand } from "./migrate.ts";
import { serveCommand } from "./serve.ts";
import { projectCommand, tokenCommand } from "./token.ts";
import { workerCommand } from "./worker.ts";
import { workerTokenCommand } from "./worker-token.ts";

export function buildProgram(): Command {
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
  program.addCommand(migrateCommand());
  program.addCommand(incubateCommand());
  program.addCommand(trainCommand());
  program.addCommand(compareCommand());
  program.addCommand(evalStagesCommand());
  program.addCommand(jobCommand(), { hidden: true });
  program.addCommand(metaCommand());
  program.addCommand(benchCommand());
  program.addCommand(doctorCommand());
  return program;
}
