// postinstall: generate the Prisma client offline. `prisma generate` needs no schema engine,
// but Prisma's CLI tries to download one unless PRISMA_SCHEMA_ENGINE_BINARY names an existing
// file; /bin/false is enough for generation (migrations are applied by our own runner).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const env = { ...process.env };
if (!env.PRISMA_SCHEMA_ENGINE_BINARY && existsSync("/bin/false"))
  env.PRISMA_SCHEMA_ENGINE_BINARY = "/bin/false";
const result = spawnSync("npx", ["--no-install", "prisma", "generate"], { stdio: "inherit", env });
process.exit(result.status ?? 1);
