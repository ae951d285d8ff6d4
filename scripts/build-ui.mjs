// Builds the dashboard (ui/ → ui/dist, served at /ui) with Vite, offline, from installed
// packages. Run by postinstall, `npm start`, `npm run serve` and the browser tests; skipped when
// ui/dist was built from the same sources (a hash of them in ui/dist/.build-hash), and when Vite
// is not installed (an install without dev dependencies: the API then answers /ui with how to build it).
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const root = join(import.meta.dirname, "..");
const ui = join(root, "ui");
const dist = join(ui, "dist");
const stamp = join(dist, ".build-hash");

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (path === dist || name === "node_modules") return [];
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const hash = createHash("sha256");
for (const file of files(ui).sort())
  hash.update(relative(root, file)).update("\0").update(readFileSync(file));
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
for (const pkg of ["vite", "preact", "graphql-ws"])
  hash.update(`${pkg}@${lock.packages[`node_modules/${pkg}`]?.version}`);
const digest = hash.digest("hex");

if (existsSync(stamp) && readFileSync(stamp, "utf8") === digest) process.exit(0);
if (!existsSync(join(root, "node_modules/vite"))) {
  console.log("build-ui: vite is not installed (no dev dependencies); the dashboard at /ui is not built");
  process.exit(0);
}
const started = Date.now();
const { build } = await import("vite");
await build({ configFile: join(ui, "vite.config.ts"), logLevel: "warn" });
writeFileSync(stamp, digest);
console.log(`build-ui: dashboard built into ui/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
