import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ClassifierOptions, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { VIT_DEFAULTS, type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import { Rng } from "../../src/engine/rng.ts";
import { f32 } from "../../src/engine/runtime/tensor.ts";
import {
  engineSourceHash,
  GRAPH_CACHE_ENV,
  GraphCache,
  graphCacheFromEnv,
  graphKey,
} from "../../src/engine/train/graph-cache.ts";
import type { TrainSpec } from "../../src/engine/train/spec.ts";
import {
  type Batch,
  compileTrainer,
  Trainer,
  type TrainerArtifacts,
} from "../../src/engine/train/trainer.ts";
import { mlpSpec } from "./models.ts";

const root = mkdtempSync(join(tmpdir(), "incubator-graph-cache-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `cache-${dirs++}`);
const entries = (dir: string) => readdirSync(dir).filter((n) => n.endsWith(".graph"));

const CFG: VitConfig = {
  ...VIT_DEFAULTS,
  imageSize: 8,
  patchSize: 4,
  width: 16,
  depth: 2,
  heads: 2,
  numClasses: 3,
};
const OPTS: ClassifierOptions = {
  batch: 4,
  optimizer: { kind: "adamw", weightDecay: 0.05 },
  labelSmoothing: 0.1,
};
const spec = (cfg: Partial<VitConfig> = {}, opts: Partial<ClassifierOptions> = {}) =>
  vitClassifierSpec({ ...CFG, ...cfg }, { ...OPTS, ...opts });

function batches(n: number): Batch[] {
  const rng = new Rng(7);
  return Array.from({ length: n }, () => ({
    images: f32(
      [4, 3, 8, 8],
      Float32Array.from({ length: 4 * 3 * 64 }, () => rng.normal()),
    ),
    labels: { dtype: "int64", shape: [4], data: BigInt64Array.from({ length: 4 }, () => BigInt(rng.int(3))) },
  }));
}

async function losses(artifacts: TrainerArtifacts): Promise<number[]> {
  const trainer = await Trainer.create(artifacts, { seed: 3, intraOpNumThreads: 1 });
  const out: number[] = [];
  for (const batch of batches(3)) out.push((await trainer.trainStep(batch, 1e-3)).loss);
  await trainer.release();
  return out;
}

describe("graph cache", () => {
  it("a second build of the same spec reads the graphs from disk and trains bit-identically", async () => {
    const dir = freshDir();
    const first = new GraphCache(dir);
    const a = compileTrainer(spec(), { cache: first });
    expect(first.stats).toEqual({ hits: 0, compiled: 2, rebuilt: 0, evicted: 0 }); // train + eval
    expect(entries(dir)).toHaveLength(2);

    // A fresh spec object and cache (as a later job process would have): no compile at all.
    const second = new GraphCache(dir);
    const b = compileTrainer(spec(), { cache: second });
    expect(second.stats).toEqual({ hits: 2, compiled: 0, rebuilt: 0, evicted: 0 });
    expect(Buffer.from(b.train.model).equals(Buffer.from(a.train.model))).toBe(true);
    expect(b.train.outputs).toEqual(a.train.outputs);
    expect(b.train.inputs).toEqual(a.train.inputs);

    const uncached = compileTrainer(spec());
    const want = await losses(uncached);
    expect(await losses(b)).toEqual(want);
    expect(new Set(want).size).toBe(3); // the steps really train (not one loss repeated)
  });

  it("caches Loop-mode graphs by their step count", () => {
    const dir = freshDir();
    compileTrainer(spec(), { cache: new GraphCache(dir), eval: false, loopSteps: [2] });
    const again = new GraphCache(dir);
    compileTrainer(spec(), { cache: again, eval: false, loopSteps: [2, 3] });
    expect(again.stats).toMatchObject({ hits: 2, compiled: 1 }); // train + loop×2 hit, loop×3 built
  });

  it("misses when any field that shapes the graph changes", () => {
    const key = (s: TrainSpec, lowering = {}) => graphKey(s, "train", 1, lowering);
    const base = key(spec());
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(key(spec())).toBe(base);
    const frozenHead = spec(
      {},
      {
        params: vitParamSpecs(CFG).map((p) => (p.name.startsWith("head.") ? { ...p, trainable: false } : p)),
      },
    );
    const variants: [string, string | undefined][] = [
      ["width", key(spec({ width: 32 }))],
      ["depth", key(spec({ depth: 3 }))],
      ["image size", key(spec({ imageSize: 12 }))],
      ["classes", key(spec({ numClasses: 4 }))],
      ["layer-norm eps", key(spec({ layerNormEps: 1e-5 }))],
      ["batch", key(spec({}, { batch: 8 }))],
      ["frozen parameters", key(frozenHead)],
      ["optimizer kind", key(spec({}, { optimizer: { kind: "lamb", weightDecay: 0.05 } }))],
      ["weight decay", key(spec({}, { optimizer: { kind: "adamw", weightDecay: 0.1 } }))],
      ["clipping", key(spec({}, { clipGradNorm: 1 }))],
      ["activation recomputation", key(spec({}, { recomputeActivations: true }))],
      ["label smoothing", key(spec({}, { labelSmoothing: 0 }))],
      ["soft targets", key(spec({}, { softTargets: true }))],
      ["drop path", key(spec({}, { dropPathRate: 0.1 }))],
      ["contrib ops", key(spec(), { contribOps: false })],
      ["fused skipLayerNorm", key(spec(), { fusedSkipLayerNorm: false })],
      ["GELU backward passes", key(spec(), { compactGeluGrad: false })],
      ["residual add with the next norm1", key(spec({}, { fuseResidualNorm: true }))],
      ["graph kind", graphKey(spec(), "loop", 1, {})],
      ["loop steps", graphKey(spec(), "loop", 2, {})],
    ];
    for (const [field, k] of variants) expect(k, field).not.toBe(base);
    expect(new Set(variants.map(([, k]) => k)).size).toBe(variants.length);
    // The engine's own source is in every key: a compiler change cannot hit an old entry.
    expect(engineSourceHash()).toMatch(/^[0-9a-f]{64}$/);
  });

  it("a changed key field compiles again instead of reading the old entry", () => {
    const dir = freshDir();
    compileTrainer(spec(), { cache: new GraphCache(dir), eval: false });
    const changed = new GraphCache(dir);
    compileTrainer(spec({}, { optimizer: { kind: "adamw", weightDecay: 0.1 } }), {
      cache: changed,
      eval: false,
    });
    expect(changed.stats).toMatchObject({ hits: 0, compiled: 1 });
    expect(entries(dir)).toHaveLength(2);
  });

  it("never caches a spec without a graphKey (its forward closure cannot be keyed)", () => {
    const dir = freshDir();
    const cache = new GraphCache(dir);
    compileTrainer(mlpSpec({ kind: "sgd", momentum: 0.9 }), { cache });
    compileTrainer(mlpSpec({ kind: "sgd", momentum: 0.9 }), { cache });
    expect(cache.stats).toMatchObject({ hits: 0, compiled: 4 });
    expect(() => entries(dir)).toThrow(); // the folder was never even made
  });

  it("rebuilds a corrupt or truncated entry instead of failing", async () => {
    const dir = freshDir();
    const original = compileTrainer(spec(), { cache: new GraphCache(dir) });
    const [one, two] = entries(dir).sort();
    writeFileSync(join(dir, one!), "not a graph");
    writeFileSync(join(dir, two!), Buffer.alloc(100, 7));
    const repaired = new GraphCache(dir);
    const again = compileTrainer(spec(), { cache: repaired });
    expect(repaired.stats).toMatchObject({ hits: 0, compiled: 2, rebuilt: 2 });
    expect(await losses(again)).toEqual(await losses(original));
    const after = new GraphCache(dir);
    compileTrainer(spec(), { cache: after });
    expect(after.stats).toMatchObject({ hits: 2, compiled: 0 });
  });

  it("keeps the folder under its size bound, least recently used first", () => {
    const dir = freshDir();
    const cache = new GraphCache(dir, { maxBytes: 1 });
    compileTrainer(spec(), { cache });
    expect(cache.stats.evicted).toBe(2);
    expect(entries(dir)).toHaveLength(0);
  });

  it("is off with INCUBATOR_GRAPH_CACHE=off and bounded by INCUBATOR_GRAPH_CACHE_MAX_MB", () => {
    expect(graphCacheFromEnv("/tmp/x", { [GRAPH_CACHE_ENV]: "off" })).toBeUndefined();
    expect(graphCacheFromEnv(undefined, {})).toBeUndefined();
    expect(graphCacheFromEnv("/tmp/x", {})?.maxBytes).toBe(512 * 1024 ** 2);
    expect(graphCacheFromEnv("/tmp/x", { INCUBATOR_GRAPH_CACHE_MAX_MB: "10" })?.maxBytes).toBe(
      10 * 1024 ** 2,
    );
    expect(() => graphCacheFromEnv("/tmp/x", { INCUBATOR_GRAPH_CACHE_MAX_MB: "lots" })).toThrow(
      /INCUBATOR_GRAPH_CACHE_MAX_MB must be a positive number/,
    );
  });
});
