import { resolve } from "node:path";

/** The `incubator` entry script, for commands that spawn themselves (bench children, workers). */
export const BIN_PATH = resolve(import.meta.dirname, "../../bin/incubator.js");
