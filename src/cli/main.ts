/**
 * `incubator` — the command line. Each subcommand lives in its own file; program.ts wires them.
 * Errors a user can fix (bad configuration, unreachable database) end the process with one
 * clear line and exit code 1; anything else prints its stack.
 */
import { exitWithError } from "./errors.ts";
import { buildProgram } from "./program.ts";

try {
  await buildProgram().parseAsync(process.argv);
} catch (error) {
  exitWithError(error);
}
