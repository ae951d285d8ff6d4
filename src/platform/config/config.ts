/**
 * Process configuration from the environment, validated once at start-up. A bad value stops
 * the process with one line that names the variable and says what would be valid.
 */
import { join } from "node:path";
import { z } from "zod";
import { AUTH_SETTINGS } from "../auth/auth-settings.ts";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const schema = z.object({
  PORT: z.coerce
    .number({ error: "must be a number" })
    .int("must be a whole number")
    .min(0, "must be between 0 and 65535")
    .max(65535, "must be between 0 and 65535")
    .default(4000),
  // Loopback by default: `npm start` then runs tokenless in local mode (src/api/auth/auth-mode.ts).
  HOST: z.string().min(1).default("127.0.0.1"),
  DATABASE_URL: z
    .string()
    .refine((value) => /^postgres(ql)?:\/\//.test(value), "must be a postgresql:// URL")
    .optional(),
  DATA_DIR: z.string().min(1).default(".data"),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  /** auto: no token on loopback, tokens elsewhere; tokens: always; local: no token, loopback only. */
  AUTH_MODE: z.enum(AUTH_SETTINGS, { error: `must be one of ${AUTH_SETTINGS.join(", ")}` }).default("auto"),
  /** Browser origins (scheme://host:port, comma-separated) that may call the API besides its own. */
  ALLOWED_ORIGINS: z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .refine(
      (list) => list.every((o) => /^https?:\/\/[^/\s]+$/.test(o)),
      "must be origins like https://dash.example.com",
    ),
});

export type Config = z.infer<typeof schema>;

/** Packed dataset shards under DATA_DIR, shared by the API server and the workers of a machine. */
export const shardCacheDir = (dataDir: string) => join(dataDir, "shards");

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parse the environment; empty strings count as unset so `PORT=` falls back to the default. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? "config");
      return `${key}=${JSON.stringify(input[key] ?? "")} ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  }
  return result.data;
}
