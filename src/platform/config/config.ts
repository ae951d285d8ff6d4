/**
 * Process configuration from the environment, validated once at start-up. A bad value stops
 * the process with one line that names the variable and says what would be valid.
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import { ARTIFACT_STORE_KINDS, type ArtifactStoreSettings } from "../artifacts/settings.ts";
import { AUTH_SETTINGS } from "../auth/auth-settings.ts";
import { DEFAULT_REQUEST_LIMITS as D, DEFAULT_ARTIFACT_QUOTA_BYTES, type RequestLimits } from "../limits.ts";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** A whole number ≥ `min` (request limits, timeouts). */
const count = (fallback: number, min = 1) =>
  z.coerce
    .number({ error: "must be a number" })
    .int("must be a whole number")
    .min(min, `must be at least ${min}`)
    .max(Number.MAX_SAFE_INTEGER, "is too large")
    .default(fallback);

/** Where registerDataset / registerMetaModel / importMetaModel may read files when DATA_ROOTS is unset. */
export const DEFAULT_EXTRA_DATA_ROOTS = ["/usr/share/datasets"];

const schema = z
  .object({
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
    /**
     * Folders (absolute, separated by ":") inside which the API reads server-side files given by
     * clients; unset: DATA_DIR and /usr/share/datasets.
     */
    DATA_ROOTS: z
      .string()
      .refine(
        (value) => value.split(":").every((p) => p === "" || p.startsWith("/")),
        "must be absolute folders separated by ':'",
      )
      .optional(),
    /** on, off, or auto (on unless NODE_ENV=production and HOST is not a loopback address). */
    GRAPHQL_INTROSPECTION: z
      .enum(["on", "off", "auto"], { error: "must be on, off or auto" })
      .default("auto"),
    NODE_ENV: z.string().optional(),
    GRAPHQL_MAX_DEPTH: count(D.maxDepth),
    GRAPHQL_MAX_COST: count(D.maxCost),
    GRAPHQL_MAX_ALIASES: count(D.maxAliases, 0),
    GRAPHQL_MAX_DIRECTIVES: count(D.maxDirectives, 0),
    GRAPHQL_MAX_TOKENS: count(D.maxTokens, 100),
    MAX_BODY_BYTES: count(D.maxBodyBytes, 1024),
    WS_MAX_PAYLOAD_BYTES: count(D.maxWsPayloadBytes, 1024),
    WS_MAX_SUBSCRIPTIONS: count(D.maxSubscriptionsPerConnection),
    MAX_UPLOAD_BYTES: count(D.maxUploadBytes),
    /** Bytes of artifacts per project unless the project has its own quota (src/platform/limits.ts). */
    ARTIFACT_QUOTA_BYTES: count(DEFAULT_ARTIFACT_QUOTA_BYTES, 0),
    MAX_PARAMETERS: count(D.maxParameters),
    HTTP_HEADERS_TIMEOUT_MS: count(D.headersTimeoutMs, 1000),
    HTTP_REQUEST_TIMEOUT_MS: count(D.requestTimeoutMs, 1000),
    HTTP_KEEP_ALIVE_TIMEOUT_MS: count(D.keepAliveTimeoutMs, 0),
    RATE_LIMIT_PER_SECOND: count(D.rateLimitPerSecond),
    RATE_LIMIT_BURST: count(D.rateLimitBurst),
    WS_MAX_CONNECTIONS_PER_TOKEN: count(D.maxWsConnectionsPerToken),
    WS_MAX_QUEUED_EVENTS: count(D.maxQueuedEventsPerSubscription, 1000),
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
    /** Where artifacts live: `local` (DATA_DIR/artifacts, zero setup) or `s3` (S3_* below). */
    ARTIFACT_STORE: z
      .enum(ARTIFACT_STORE_KINDS, { error: `must be one of ${ARTIFACT_STORE_KINDS.join(", ")}` })
      .default("local"),
    /** The bucket (must exist) when ARTIFACT_STORE=s3. Credentials: the AWS SDK's standard chain. */
    S3_BUCKET: z.string().min(1).optional(),
    /** Key prefix inside the bucket, e.g. `incubator/` (several deployments in one bucket). */
    S3_PREFIX: z.string().default(""),
    /** An S3-compatible server (MinIO, Ceph, …); unset: AWS S3. */
    S3_ENDPOINT: z
      .string()
      .refine((v) => /^https?:\/\/[^/\s]+/.test(v), "must be a URL such as http://minio:9000")
      .optional(),
    S3_REGION: z.string().min(1).default("us-east-1"),
    /** `true` for servers that address buckets as http://host/bucket (most S3-compatible ones). */
    S3_FORCE_PATH_STYLE: z
      .enum(["true", "false"], { error: "must be true or false" })
      .default("false")
      .transform((v) => v === "true"),
  })
  .refine((c) => c.ARTIFACT_STORE !== "s3" || c.S3_BUCKET !== undefined, {
    path: ["S3_BUCKET"],
    message: "is required when ARTIFACT_STORE=s3 (the bucket must already exist)",
  });

export type Config = z.infer<typeof schema>;

/** Every environment variable the configuration reads (deployment files are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

/** Packed dataset shards under DATA_DIR, shared by the API server and the workers of a machine. */
export const shardCacheDir = (dataDir: string) => join(dataDir, "shards");

/** Compiled step graphs under DATA_DIR, shared by the jobs of a machine (INCUBATOR_GRAPH_CACHE=off: none). */
export const graphCacheDir = (dataDir: string) => join(dataDir, "graph-cache");

/** The artifact store the environment asks for (local under DATA_DIR, or an S3 bucket). */
export function artifactStoreFromConfig(
  c: Pick<
    Config,
    "ARTIFACT_STORE" | "DATA_DIR" | `S3_${"BUCKET" | "PREFIX" | "ENDPOINT" | "REGION" | "FORCE_PATH_STYLE"}`
  >,
): ArtifactStoreSettings {
  if (c.ARTIFACT_STORE === "local") return { kind: "local", dataDir: resolve(c.DATA_DIR) };
  return {
    kind: "s3",
    dataDir: resolve(c.DATA_DIR),
    bucket: c.S3_BUCKET as string, // required by the schema when ARTIFACT_STORE=s3
    prefix: c.S3_PREFIX,
    region: c.S3_REGION,
    forcePathStyle: c.S3_FORCE_PATH_STYLE,
    ...(c.S3_ENDPOINT ? { endpoint: c.S3_ENDPOINT } : {}),
  };
}

/** The request limits the environment asks for (defaults in platform/limits.ts). */
export function limitsFromConfig(c: Config): RequestLimits {
  return {
    maxDepth: c.GRAPHQL_MAX_DEPTH,
    maxCost: c.GRAPHQL_MAX_COST,
    maxAliases: c.GRAPHQL_MAX_ALIASES,
    maxDirectives: c.GRAPHQL_MAX_DIRECTIVES,
    maxTokens: c.GRAPHQL_MAX_TOKENS,
    maxBodyBytes: c.MAX_BODY_BYTES,
    maxWsPayloadBytes: c.WS_MAX_PAYLOAD_BYTES,
    maxSubscriptionsPerConnection: c.WS_MAX_SUBSCRIPTIONS,
    maxUploadBytes: c.MAX_UPLOAD_BYTES,
    maxParameters: c.MAX_PARAMETERS,
    headersTimeoutMs: c.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: c.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeoutMs: c.HTTP_KEEP_ALIVE_TIMEOUT_MS,
    rateLimitPerSecond: c.RATE_LIMIT_PER_SECOND,
    rateLimitBurst: c.RATE_LIMIT_BURST,
    maxWsConnectionsPerToken: c.WS_MAX_CONNECTIONS_PER_TOKEN,
    maxQueuedEventsPerSubscription: c.WS_MAX_QUEUED_EVENTS,
  };
}

/** DATA_ROOTS as absolute folders; unset: DATA_DIR plus DEFAULT_EXTRA_DATA_ROOTS. */
export function dataRootsFromConfig(c: Pick<Config, "DATA_ROOTS" | "DATA_DIR">): string[] {
  if (c.DATA_ROOTS !== undefined) return c.DATA_ROOTS.split(":").filter((p) => p !== "");
  return [resolve(c.DATA_DIR), ...DEFAULT_EXTRA_DATA_ROOTS];
}

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/** Whether the schema answers introspection: GRAPHQL_INTROSPECTION, or auto (see the schema). */
export function introspectionFromConfig(
  c: Pick<Config, "GRAPHQL_INTROSPECTION" | "NODE_ENV" | "HOST">,
): boolean {
  if (c.GRAPHQL_INTROSPECTION !== "auto") return c.GRAPHQL_INTROSPECTION === "on";
  return c.NODE_ENV !== "production" || LOOPBACK.test(c.HOST);
}

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
