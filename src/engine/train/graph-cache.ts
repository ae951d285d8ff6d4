/**
 * Compiled step graphs on disk, keyed by what determines them — not by their own bytes — so a job
 * whose graph was built before (a retry, a later run of the same configuration, another seed, a
 * benchmark) loads the ONNX bytes instead of rebuilding forward + autodiff + optimizer and
 * serialising them.
 *
 * The key is the sha256 of a canonical JSON of: the cache format, a hash of the engine's own
 * source (every file under src/engine, so any compiler, lowering, op or model change misses),
 * the graph kind and Loop step count, the spec's `graphKey` (what its forward function builds
 * from: for a ViT classifier the config, forward plan, batch, loss, label smoothing, drop-path
 * on/off), every parameter's name, shape, trainable flag and decay flag in order (the flat
 * layout), the batch inputs, the optimizer config, clipping and activation recomputation (baked
 * into the train graph), and
 * the lowering options. Not in the key, because not in the graph: initial values and seeds, the
 * learning rate, ORT session options (threads, provider, arena).
 *
 * What hits and what misses, honestly:
 *  - Hits: the same phase of the same model and recipe again — a retried job, a resumed job,
 *    another seed or run of the same configuration, the same preset's runs on one machine.
 *  - Misses: the K modular jobs of one run between themselves. They are different graphs, not
 *    renamings of one: module i's trainable blocks sit at a different depth, so its backward pass
 *    runs through a different number of frozen stages, and module 0 / K−1 own the embedding /
 *    head. Making parameter names position-independent would not change that, so names stay
 *    timm's. PT, FT and E2E are one graph each per configuration.
 *  - A spec without `graphKey` (a hand-written forward) is never cached: its closure cannot be
 *    keyed safely.
 *
 * Files are `<dir>/<key>.graph` (a magic line, a JSON header with the model's sha256, the ONNX
 * bytes), written to a temporary name and renamed, so readers never see half a file. A file that
 * does not parse or whose bytes do not match the header's sha256 is deleted and rebuilt. The
 * folder is bounded: after each write the least recently used files (hits refresh mtime) are
 * deleted until it is under `maxBytes`. It is safe to delete the folder at any time.
 * `INCUBATOR_GRAPH_CACHE=off` turns the cache off (`graphCacheFromEnv`).
 */
import { createHash, randomBytes } from "node:crypto";
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { CompiledModel, LoweringOptions } from "./compile.ts";
import type { TrainSpec } from "./spec.ts";

/** Bumped when the file layout or the key's fields change. */
const FORMAT = 1;
const MAGIC = Buffer.from(`incubator-graph/${FORMAT}\n`);
const SUFFIX = ".graph";
export const GRAPH_CACHE_ENV = "INCUBATOR_GRAPH_CACHE";
export const GRAPH_CACHE_MAX_MB_ENV = "INCUBATOR_GRAPH_CACHE_MAX_MB";
// Entries are small (parameters are graph inputs, not initializers: deit-t's train step is ~0.1 MB,
// a depth-48 one ~0.4 MB), so this bound holds thousands of graphs.
const DEFAULT_MAX_BYTES = 512 * 1024 ** 2;

export interface GraphCacheStats {
  /** graphs read from disk */
  hits: number;
  /** graphs compiled (the compile function was called) */
  compiled: number;
  /** entries that could not be read or failed their checksum, deleted and rebuilt */
  rebuilt: number;
  /** files deleted to keep the folder under its bound */
  evicted: number;
}

interface Header {
  kind: CompiledModel["kind"];
  steps: number;
  inputs: CompiledModel["inputs"];
  outputs: string[];
  irNodes: number;
  bytes: number;
  sha256: string;
}

const ENGINE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
let engineHash: string | undefined;

/** sha256 over every source file of the engine (path and content), computed once per process. */
export function engineSourceHash(): string {
  if (engineHash) return engineHash;
  const h = createHash("sha256");
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|js|mjs)$/.test(entry.name)) {
        h.update(relative(ENGINE_DIR, path)).update("\0").update(readFileSync(path)).update("\0");
      }
    }
  };
  walk(ENGINE_DIR);
  engineHash = h.digest("hex");
  return engineHash;
}

/** JSON with object keys sorted and undefined dropped, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .sort()
          .filter((k) => o[k] !== undefined)
          .map((k) => [k, o[k]]),
      );
    }
    return v;
  });
}

/** What one compiled graph is keyed by; undefined when the spec cannot be keyed (no graphKey). */
export function graphKey(
  spec: TrainSpec,
  kind: CompiledModel["kind"],
  steps: number,
  lowering: LoweringOptions,
): string | undefined {
  if (spec.graphKey === undefined) return undefined;
  const fields = {
    format: FORMAT,
    engine: engineSourceHash(),
    kind,
    steps,
    graph: spec.graphKey,
    params: spec.params.map((p) => [p.name, p.shape, p.trainable ?? true, p.decay ?? null]),
    inputs: kind === "eval" ? (spec.evalInputs ?? spec.inputs) : spec.inputs,
    // The eval graph has no optimizer; keeping it out lets one eval entry serve every recipe.
    optimizer: kind === "eval" ? null : spec.optimizer,
    clipGradNorm: kind === "eval" ? null : (spec.clipGradNorm ?? null),
    // Recomputation changes the backward (train and loop graphs), not the eval graph.
    recomputeActivations: kind === "eval" ? false : (spec.recomputeActivations ?? false),
    lowering: {
      contribOps: lowering.contribOps ?? null,
      fusedSkipLayerNorm: lowering.fusedSkipLayerNorm ?? null,
      compactGeluGrad: lowering.compactGeluGrad ?? null,
    },
  };
  return createHash("sha256").update(canonicalJson(fields)).digest("hex");
}

export class GraphCache {
  readonly stats: GraphCacheStats = { hits: 0, compiled: 0, rebuilt: 0, evicted: 0 };
  readonly maxBytes: number;

  constructor(
    readonly dir: string,
    opts: { maxBytes?: number } = {},
  ) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** The graph for `key` from disk, else `compile()` and store it. No key: just compile. */
  getOrCompile(key: string | undefined, compile: () => CompiledModel): CompiledModel {
    if (key === undefined) return this.compileCounted(compile);
    const path = join(this.dir, `${key}${SUFFIX}`);
    const cached = this.read(path);
    if (cached) {
      this.stats.hits++;
      return cached;
    }
    const model = this.compileCounted(compile);
    this.write(path, model);
    return model;
  }

  private compileCounted(compile: () => CompiledModel): CompiledModel {
    this.stats.compiled++;
    return compile();
  }

  private read(path: string): CompiledModel | undefined {
    let file: Buffer;
    try {
      file = readFileSync(path);
    } catch {
      return undefined; // not cached (or unreadable: rebuilt and rewritten below)
    }
    const model = parseEntry(file);
    if (!model) {
      this.stats.rebuilt++;
      rmSync(path, { force: true });
      return undefined;
    }
    const now = new Date();
    try {
      utimesSync(path, now, now); // least recently used goes first when the folder is pruned
    } catch {
      // another process pruned it meanwhile; the bytes are already read
    }
    return model;
  }

  private write(path: string, model: CompiledModel): void {
    const header: Header = {
      kind: model.kind,
      steps: model.steps,
      inputs: model.inputs,
      outputs: model.outputs,
      irNodes: model.irNodes,
      bytes: model.model.length,
      sha256: createHash("sha256").update(model.model).digest("hex"),
    };
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.length);
    const temp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(temp, Buffer.concat([MAGIC, length, json, model.model]));
      renameSync(temp, path);
    } catch {
      // A cache that cannot be written (read-only or full disk) costs a rebuild next time, not the job.
      rmSync(temp, { force: true });
      return;
    }
    this.prune();
  }

  /** Delete least recently used entries until the folder is under maxBytes. */
  private prune(): void {
    const entries = readdirSync(this.dir)
      .filter((n) => n.endsWith(SUFFIX))
      .flatMap((n) => {
        try {
          const s = statSync(join(this.dir, n));
          return [{ path: join(this.dir, n), size: s.size, used: s.mtimeMs }];
        } catch {
          return [];
        }
      })
      .sort((a, b) => a.used - b.used);
    let total = entries.reduce((sum, e) => sum + e.size, 0);
    for (const e of entries) {
      if (total <= this.maxBytes) break;
      rmSync(e.path, { force: true });
      total -= e.size;
      this.stats.evicted++;
    }
  }
}

function parseEntry(file: Buffer): CompiledModel | undefined {
  try {
    if (!file.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const length = file.readUInt32LE(MAGIC.length);
    const start = MAGIC.length + 4 + length;
    const header = JSON.parse(file.subarray(MAGIC.length + 4, start).toString("utf8")) as Header;
    const bytes = file.subarray(start);
    if (bytes.length !== header.bytes) return undefined;
    if (createHash("sha256").update(bytes).digest("hex") !== header.sha256) return undefined;
    return {
      kind: header.kind,
      steps: header.steps,
      inputs: header.inputs,
      outputs: header.outputs,
      irNodes: header.irNodes,
      // A copy of its own: a view into the file's buffer would carry the header along whenever
      // the artifacts are posted to a trainer thread.
      model: new Uint8Array(bytes),
    };
  } catch {
    return undefined;
  }
}

/**
 * The cache at `dir` unless `INCUBATOR_GRAPH_CACHE=off` (or `0`, `false`);
 * `INCUBATOR_GRAPH_CACHE_MAX_MB` bounds its size (default 512).
 */
export function graphCacheFromEnv(dir: string | undefined, env = process.env): GraphCache | undefined {
  if (!dir) return undefined;
  const flag = env[GRAPH_CACHE_ENV]?.trim().toLowerCase();
  if (flag === "off" || flag === "0" || flag === "false") return undefined;
  const maxMb = env[GRAPH_CACHE_MAX_MB_ENV];
  if (maxMb === undefined || maxMb === "") return new GraphCache(dir);
  const n = Number(maxMb);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`${GRAPH_CACHE_MAX_MB_ENV} must be a positive number of megabytes, got "${maxMb}"`);
  return new GraphCache(dir, { maxBytes: n * 1024 ** 2 });
}
