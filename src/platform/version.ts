import { readFileSync } from "node:fs";
import { resolve } from "node:path";

let cached: string | undefined;

/** The version in package.json (one place for that fact). */
export function packageVersion(): string {
  cached ??= (
    JSON.parse(readFileSync(resolve(import.meta.dirname, "../../package.json"), "utf8")) as {
      version: string;
    }
  ).version;
  return cached;
}
