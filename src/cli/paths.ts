import { resolve } from "node:path";

/** The `incubator` entry script, for commands that spawn themselves (bench children, workers). */
export const BIN_PATH = resolve(import.meta.dirname, "../../bin/incubator.js");

/** This checkout's `src` folder (`incubator bench events` measures its API server by default). */
export const SRC_DIR = resolve(import.meta.dirname, "..");
