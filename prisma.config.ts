// Prisma CLI configuration. The app itself never runs the CLI: it generates the client on
// install (offline) and applies prisma/migrations/ at start-up (src/platform/db/migrate.ts).
// A user with internet can still run `npx prisma migrate deploy` on the same folder.
import { defineConfig } from "prisma/config";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://localhost:5432/incubator" },
});
