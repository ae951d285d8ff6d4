/**
 * Reads the deployment files (docker/, workers/, docs/deploy.md) into the two facts the tests
 * check against the program: which `incubator` command lines they run, and which environment
 * variables they set for the program.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseAllDocuments } from "yaml";

export const ROOT = resolve(import.meta.dirname, "../..");
export const COMPOSE_FILE = join(ROOT, "docker/compose.yaml");
export const DOCKERFILE = join(ROOT, "docker/Dockerfile");
export const K8S_DIR = join(ROOT, "docker/k8s");
export const SYSTEMD_UNIT = join(ROOT, "workers/incubator-worker@.service");
export const WORKER_ENV_EXAMPLE = join(ROOT, "workers/incubator-worker.env.example");
/** Prose with command lines a user copies. */
export const DOC_FILES = ["docs/deploy.md", "workers/README.md", "docker/README.md"].map((f) =>
  join(ROOT, f),
);

/** Where a fact was found, for failure messages. */
export interface Found<T> {
  source: string;
  value: T;
}

const rel = (path: string) => relative(ROOT, path);
const read = (path: string) => readFileSync(path, "utf8");

/** Our images are the ones named incubator / incubator-cuda (docker/Dockerfile's targets). */
export const isIncubatorImage = (image: unknown) =>
  typeof image === "string" && /^(?:[\w.-]+\/)*incubator(?:-cuda)?(?::|$)/.test(image);

// ---- compose ---------------------------------------------------------------------------------

export interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string | number | null>;
  [key: string]: unknown;
}

export function composeServices(): Record<string, ComposeService> {
  // merge: compose files share settings with `<<: *anchor` (YAML 1.1 merge keys).
  const [doc] = parseAllDocuments(read(COMPOSE_FILE), { merge: true });
  return (doc!.toJS() as { services: Record<string, ComposeService> }).services;
}

// ---- Kubernetes --------------------------------------------------------------------------------

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** Every object of every manifest (kustomization.yaml apart), with its file. */
export function k8sObjects(): Found<K8sObject>[] {
  const out: Found<K8sObject>[] = [];
  for (const file of readdirSync(K8S_DIR).sort()) {
    if (!file.endsWith(".yaml") || file === "kustomization.yaml") continue;
    for (const doc of parseAllDocuments(read(join(K8S_DIR, file)))) {
      if (doc.errors.length) throw new Error(`docker/k8s/${file}: ${doc.errors[0]!.message}`);
      const value = doc.toJS() as K8sObject | null;
      if (value) out.push({ source: `docker/k8s/${file}`, value });
    }
  }
  return out;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: { name: string; containerPort: number }[];
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  [key: string]: unknown;
  command?: string[];
  env?: { name: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
}

/** The pod template's containers of a Deployment or Job. */
export function podContainers(o: K8sObject): Container[] {
  const spec = o.spec as { template?: { spec?: { containers?: Container[] } } } | undefined;
  return spec?.template?.spec?.containers ?? [];
}

// ---- Dockerfile, systemd, env files, Markdown --------------------------------------------------

/** Logical lines: backslash continuations joined, comments dropped. */
function logicalLines(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .filter((l) => !/^\s*#/.test(l));
}

/** KEY=value pairs of an env file (comments and blank lines skipped). */
export function envFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of logicalLines(read(path))) {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

/** `KEY=value` settings of a systemd unit's [Service] section, in order (keys may repeat). */
export function unitSettings(path = SYSTEMD_UNIT): [string, string][] {
  return logicalLines(read(path))
    .map((l) => l.match(/^([A-Za-z]+)=(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null)
    .map((m) => [m[1]!, m[2]!]);
}

/** Split a shell-like command line into words (single and double quotes; no expansion). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let quote: string | null = null;
  let started = false;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      started = true;
    } else if (/\s/.test(ch)) {
      if (started || word) words.push(word);
      word = "";
      started = false;
    } else word += ch;
  }
  if (started || word) words.push(word);
  return words;
}

/** The argv after `incubator` of every command line the deployment files and docs run. */
export function incubatorInvocations(): Found<string[]>[] {
  const out: Found<string[]>[] = [];
  // Dockerfile: ENTRYPOINT ["incubator"] with CMD [...] per stage.
  for (const line of logicalLines(read(DOCKERFILE))) {
    const m = line.match(/^CMD\s+(\[.*\])\s*$/);
    if (m) out.push({ source: rel(DOCKERFILE), value: JSON.parse(m[1]!) as string[] });
  }
  // compose: services on our image run `command` with the image's entrypoint.
  for (const [name, service] of Object.entries(composeServices())) {
    if (isIncubatorImage(service.image) && service.command)
      out.push({ source: `${rel(COMPOSE_FILE)} (${name})`, value: service.command.map(String) });
  }
  // Kubernetes: containers on our image run `args` with the image's entrypoint.
  for (const { source, value } of k8sObjects()) {
    for (const c of podContainers(value)) {
      if (!isIncubatorImage(c.image)) continue;
      if (c.command) throw new Error(`${source}: ${c.name} overrides the image's entrypoint`);
      if (c.args) out.push({ source: `${source} (${c.name})`, value: c.args });
    }
  }
  // systemd: ExecStart runs bin/incubator.js; ${VAR} from the example env file, %i/%H as systemd would.
  const env = envFile(WORKER_ENV_EXAMPLE);
  for (const [key, value] of unitSettings()) {
    if (key !== "ExecStart") continue;
    const expanded = value
      .replace(/\$\{(\w+)\}/g, (_, name: string) => env[name] ?? `\${${name}}`)
      .replace(/%i/g, "0")
      .replace(/%H/g, "host");
    const words = shellWords(expanded);
    const at = words.findIndex((w) => w.endsWith("bin/incubator.js"));
    if (at < 0) throw new Error(`${rel(SYSTEMD_UNIT)}: ExecStart does not run bin/incubator.js`);
    out.push({ source: rel(SYSTEMD_UNIT), value: words.slice(at + 1) });
  }
  for (const file of DOC_FILES) out.push(...docInvocations(file));
  return out;
}

/** A command line in the docs: the program's argv and the variables assigned in front of it. */
interface DocCommand {
  argv: string[];
  env: string[];
}

/**
 * Command lines in a Markdown file's code blocks that run the program: `npx incubator …` or
 * `incubator …` at the start of a command (after `VAR=value` assignments or `sudo`),
 * `… exec <service> incubator …`, `kubectl … -- incubator …`, `docker compose … run --rm <service> …`
 * (the image's entrypoint is incubator), `docker run … incubator:<tag> …`.
 */
function docCommands(path: string): Found<DocCommand>[] {
  const text = read(path);
  const out: Found<DocCommand>[] = [];
  const blocks = [...text.matchAll(/```[^\n]*\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const assignments = "((?:[A-Z_][A-Z0-9_]*=\\S* )*)";
  const patterns = [
    new RegExp(`(?:^|[;&|(]\\s*|\\bsudo(?: -\\w+(?: \\S+)?)* )${assignments}(?:npx )?incubator ([^#\\n]*)`),
    /\bexec(?: -T)? [\w-]+ ()incubator ([^#\n]*)/,
    / -- ()incubator ([^#\n]*)/,
    /\bcompose\b[^#\n]* run --rm ()[\w-]+ ([^#\n]*)/,
    /\bdocker run\b[^#\n]* ()(?:[\w.-]+\/)*incubator(?:-cuda)?:\S+ ([^#\n]*)/,
  ];
  for (const block of blocks) {
    for (const line of logicalLines(block)) {
      const command = line.replace(/^\s*\$\s*/, "").trim();
      for (const pattern of patterns) {
        const m = command.match(pattern);
        if (!m) continue;
        // The program's part ends where the shell's starts (pipe, redirect, next command).
        const args = m[2]!.split(/\s(?:\||>|2>|&&|;)\s?/)[0]!;
        const env = m[1]!.trim()
          ? m[1]!
              .trim()
              .split(/\s+/)
              .map((a) => a.split("=")[0]!)
          : [];
        out.push({ source: rel(path), value: { argv: shellWords(args.trim()), env } });
        break;
      }
    }
  }
  return out;
}

/** The argv of every command line a Markdown file's code blocks run. */
export function docInvocations(path: string): Found<string[]>[] {
  return docCommands(path).map(({ source, value }) => ({ source, value: value.argv }));
}

/** Names of variables each file sets for the program. */
export function programEnvironment(): Found<string>[] {
  const out: Found<string>[] = [];
  // Dockerfile ENV (every stage).
  for (const line of logicalLines(read(DOCKERFILE))) {
    const m = line.match(/^ENV\s+(.*)$/);
    if (!m) continue;
    for (const pair of shellWords(m[1]!)) {
      const name = pair.split("=")[0]!;
      out.push({ source: rel(DOCKERFILE), value: name });
    }
  }
  // compose: environment of services on our image.
  for (const [name, service] of Object.entries(composeServices())) {
    if (!isIncubatorImage(service.image)) continue;
    for (const key of Object.keys(service.environment ?? {}))
      out.push({ source: `${rel(COMPOSE_FILE)} (${name})`, value: key });
  }
  // Kubernetes: env of our containers, and every key of the ConfigMaps and Secrets they load.
  const objects = k8sObjects();
  const keysOf = (kind: string, name: string) => {
    const o = objects.find((x) => x.value.kind === kind && x.value.metadata.name === name);
    if (!o) throw new Error(`no ${kind} named ${name} in docker/k8s`);
    const data = (o.value.data ?? o.value.stringData ?? {}) as Record<string, string>;
    return { source: o.source, keys: Object.keys(data) };
  };
  for (const { source, value } of objects) {
    for (const c of podContainers(value)) {
      if (!isIncubatorImage(c.image)) continue;
      for (const e of c.env ?? []) out.push({ source: `${source} (${c.name})`, value: e.name });
      for (const from of c.envFrom ?? []) {
        const ref = from.configMapRef
          ? keysOf("ConfigMap", from.configMapRef.name)
          : keysOf("Secret", from.secretRef!.name);
        for (const key of ref.keys) out.push({ source: ref.source, value: key });
      }
    }
  }
  // systemd: Environment= lines, and the env file's variables the unit's command line does not use.
  const execStart = unitSettings()
    .filter(([k]) => k === "ExecStart")
    .map(([, v]) => v)
    .join(" ");
  for (const [key, value] of unitSettings()) {
    if (key === "Environment") out.push({ source: rel(SYSTEMD_UNIT), value: value.split("=")[0]! });
  }
  for (const name of Object.keys(envFile(WORKER_ENV_EXAMPLE))) {
    if (!execStart.includes(`\${${name}}`)) out.push({ source: rel(WORKER_ENV_EXAMPLE), value: name });
  }
  // Docs: variables assigned in front of an incubator command line.
  for (const file of DOC_FILES)
    for (const { source, value } of docCommands(file))
      for (const name of value.env) out.push({ source, value: name });
  const seen = new Set<string>();
  return out.filter((f) => {
    const key = `${f.source}\0${f.value}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Variables the source reads directly (`process.env.NAME`), besides the configuration schema. */
export function variablesReadBySource(dir = join(ROOT, "src")): Set<string> {
  const names = new Set<string>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== "generated") walk(path);
      } else if (/\.(ts|mjs|js)$/.test(entry.name)) {
        for (const m of read(path).matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)) names.add(m[1]!);
      }
    }
  };
  walk(dir);
  return names;
}
