/**
 * `incubator token create --role admin [--project a,b] [--expires-in 30d] [--name n]`,
 * `incubator token list`, `incubator token revoke --name n`, and
 * `incubator project create|list|quota`:
 * API tokens and projects, straight against the platform's database (DATABASE_URL, or the
 * embedded one under DATA_DIR), like a `createsuperuser` — how the first admin token is made.
 */
import { randomBytes } from "node:crypto";
import { Command } from "commander";
import type { Role } from "../generated/prisma/client.ts";
import { artifactUsageBytes, quotaBytesOf } from "../platform/artifacts/quota.ts";
import {
  apiTokenNameProblem,
  createApiToken,
  parseDuration,
  ROLES,
  revokeApiToken,
} from "../platform/auth/api-tokens.ts";
import { projectNameProblem, projectsByName } from "../platform/auth/projects.ts";
import { exitWithError, loadConfigOrExit } from "./errors.ts";
import { withPlatform } from "./worker-token.ts";

const list = (text: string | undefined) =>
  (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

export function tokenCommand(): Command {
  const command = new Command("token").description(
    "manage API tokens (Authorization: Bearer inc_at_…); the first admin token is made here",
  );
  command
    .command("create")
    .description("create an API token; its secret is printed once, on stdout")
    .requiredOption("--role <role>", `one of ${ROLES.map((r) => r.toLowerCase()).join(", ")}`)
    .option("--name <name>", "unique name (default: <role>-<random>)")
    .option("--project <list>", "project names it is limited to (default: every project)")
    .option("--expires-in <duration>", "e.g. 12h, 30d, 52w (default: never)")
    .action(async (opts: { role: string; name?: string; project?: string; expiresIn?: string }) => {
      const role = opts.role.toUpperCase() as Role;
      if (!ROLES.includes(role as (typeof ROLES)[number]))
        exitWithError(new Error(`--role must be one of ${ROLES.map((r) => r.toLowerCase()).join(", ")}`));
      const name = opts.name ?? `${role.toLowerCase()}-${randomBytes(3).toString("hex")}`;
      const nameProblem = apiTokenNameProblem(name);
      if (nameProblem) exitWithError(new Error(`--name: ${nameProblem}`));
      let expiresAt: Date | null = null;
      if (opts.expiresIn !== undefined) {
        const ms = parseDuration(opts.expiresIn);
        if (ms === null)
          exitWithError(new Error(`--expires-in: "${opts.expiresIn}" is not a duration like 12h or 30d`));
        expiresAt = new Date(Date.now() + ms);
      }
      await withPlatform(async ({ db }) => {
        if (await db.apiToken.findUnique({ where: { name } }))
          exitWithError(new Error(`--name: an API token named "${name}" already exists`));
        const projects = await projectsByName(db, list(opts.project)).catch((e) => exitWithError(e));
        const { secret } = await createApiToken(db, {
          name,
          role,
          projectIds: projects.map((p) => p.id),
          expiresAt,
        });
        process.stderr.write(
          `API token "${name}" (${role.toLowerCase()}, ${projects.length ? `projects ${projects.map((p) => p.name).join(",")}` : "every project"}${expiresAt ? `, expires ${expiresAt.toISOString()}` : ""}); keep it secret, it is not shown again:\n`,
        );
        process.stdout.write(`${secret}\n`);
      });
    });
  command
    .command("list")
    .description("list API tokens (never their secrets)")
    .action(async () => {
      await withPlatform(async ({ db }) => {
        const tokens = await db.apiToken.findMany({
          orderBy: { createdAt: "asc" },
          include: { projects: true },
        });
        for (const t of tokens) {
          const state = t.revokedAt
            ? `revoked ${t.revokedAt.toISOString()}`
            : t.expiresAt && t.expiresAt <= new Date()
              ? `expired ${t.expiresAt.toISOString()}`
              : "active";
          process.stdout.write(
            `${t.name}\t${t.role.toLowerCase()}\t${t.projects.map((p) => p.name).join(",") || "*"}\t${state}\tlast used ${t.lastUsedAt?.toISOString() ?? "never"}\n`,
          );
        }
      });
    });
  command
    .command("revoke")
    .description("revoke an API token: refused from its next call, its subscriptions end")
    .requiredOption("--name <name>", "the token's name")
    .action(async (opts: { name: string }) => {
      await withPlatform(async ({ db }) => {
        const token = await db.apiToken.findUnique({ where: { name: opts.name } });
        if (!token || token.revokedAt)
          exitWithError(new Error(`--name: no active API token named "${opts.name}"`));
        // The same call as the revokeApiToken mutation: API servers hear it and close its connections.
        await revokeApiToken(db, token.id);
        process.stderr.write(`revoked API token "${opts.name}"\n`);
      });
    });
  return command;
}

export function projectCommand(): Command {
  const command = new Command("project").description("manage projects (they scope runs, datasets, models)");
  command
    .command("create <name>")
    .description("create a project")
    .action(async (name: string) => {
      const problem = projectNameProblem(name);
      if (problem) exitWithError(new Error(problem));
      await withPlatform(async ({ db }) => {
        if (await db.project.findUnique({ where: { name } }))
          exitWithError(new Error(`a project named "${name}" already exists`));
        await db.project.create({ data: { name } });
        process.stderr.write(`created project "${name}"\n`);
      });
    });
  command
    .command("list")
    .description("list projects: name, artifact bytes used, artifact quota in bytes")
    .action(async () => {
      const { ARTIFACT_QUOTA_BYTES } = loadConfigOrExit();
      await withPlatform(async ({ db }) => {
        for (const p of await db.project.findMany({ orderBy: { name: "asc" } })) {
          const quota = quotaBytesOf(p, ARTIFACT_QUOTA_BYTES);
          const own = p.artifactQuotaBytes === null ? " (ARTIFACT_QUOTA_BYTES)" : "";
          process.stdout.write(`${p.name}\t${await artifactUsageBytes(db, p.id)}\t${quota}${own}\n`);
        }
      });
    });
  command
    .command("quota <name> <bytes>")
    .description(
      "set a project's artifact quota in bytes (each content hash counted once), or `default` for ARTIFACT_QUOTA_BYTES",
    )
    .action(async (name: string, bytes: string) => {
      const quota = bytes === "default" ? null : /^\d+$/.test(bytes) ? BigInt(bytes) : undefined;
      if (quota === undefined)
        exitWithError(new Error(`<bytes>: "${bytes}" is not a whole number of bytes or \`default\``));
      await withPlatform(async ({ db }) => {
        const updated = await db.project.updateMany({ where: { name }, data: { artifactQuotaBytes: quota } });
        if (updated.count === 0)
          exitWithError(new Error(`no project named "${name}"; \`incubator project list\` shows them`));
        process.stderr.write(
          `project "${name}": artifact quota ${quota === null ? "ARTIFACT_QUOTA_BYTES" : `${quota} bytes`}\n`,
        );
      });
    });
  return command;
}
