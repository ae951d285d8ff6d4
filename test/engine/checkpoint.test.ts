/**
 * Checkpoints: a tiny ViT with drop-path trained N steps, checkpointed, and continued K steps
 * must give bitwise the same losses as a fresh Trainer + fresh Rng restored from the file; and
 * every way a file can fail to fit (corrupt, truncated, other model, other optimizer, weights
 * only) gives an error naming the file and the tensor.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CheckpointError,
  loadCheckpoint,
  loadWeights,
  restoreTrainer,
  saveCheckpoint,
  saveWeights,
} from "../../src/engine/checkpoint/checkpoint.ts";
import { readSafetensors, tensorData, writeSafetensors } from "../../src/engine/checkpoint/safetensors.ts";
import { dropMaskShape, dropPathMasks, vitClassifierSpec } from "../../src/engine/models/classifier.ts";
import { type VitConfig, vitParamSpecs } from "../../src/engine/models/vit.ts";
import type { OptimizerConfig } from "../../src/engine/optim/types.ts";
import { Rng } from "../../src/engine/rng.ts";
import {
  type Batch,
  compileTrainer,
  Trainer,
  type TrainerArtifacts,
} from "../../src/engine/train/trainer.ts";
import { useTempDir } from "../helpers/tmp.ts";
import { tinyVit } from "./models.ts";

const dir = useTempDir("ckpt");

const CFG: VitConfig = tinyVit({ depth: 3, dropPathRate: 0.25 });
const BATCH = 8;
const ADAMW: OptimizerConfig = { kind: "adamw", weightDecay: 0.05 };
const SESSION = { intraOpNumThreads: 2 };

/** A fixed dataset (its own seed): each class has a mean image, plus noise. */
const DATA = (() => {
  const n = 64;
  const size = CFG.channels * CFG.imageSize * CFG.imageSize;
  const r = new Rng(123);
  const means = Array.from({ length: CFG.numClasses }, () =>
    Float32Array.from({ length: size }, () => r.normal()),
  );
  const images = new Float32Array(n * size);
  const labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const c = r.int(CFG.numClasses);
    labels[i] = BigInt(c);
    for (let j = 0; j < size; j++) images[i * size + j] = means[c]![j]! + 0.5 * r.normal();
  }
  return { n, size, images, labels };
})();

/** One batch: random samples and drop-path masks, both from the run's `rng`. */
function nextBatch(rng: Rng): Batch {
  const images = new Float32Array(BATCH * DATA.size);
  const labels = new BigInt64Array(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const k = rng.int(DATA.n);
    images.set(DATA.images.subarray(k * DATA.size, (k + 1) * DATA.size), i * DATA.size);
    labels[i] = DATA.labels[k]!;
  }
  return {
    images: { dtype: "float32", shape: [BATCH, CFG.channels, CFG.imageSize, CFG.imageSize], data: images },
    labels: { dtype: "int64", shape: [BATCH], data: labels },
    drop_mask: {
      dtype: "float32",
      shape: dropMaskShape(CFG.depth, BATCH),
      data: dropPathMasks(rng, CFG.dropPathRate, CFG.depth, BATCH),
    },
  };
}

const lrAt = (step: number) => 2e-3 * (1 - step / 50);

async function train(trainer: Trainer, rng: Rng, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++)
    losses.push((await trainer.trainStep(nextBatch(rng), lrAt(trainer.step))).loss);
  return losses;
}

const spec = (cfg: VitConfig, optimizer: OptimizerConfig) =>
  vitClassifierSpec(cfg, { batch: BATCH, optimizer, labelSmoothing: 0.1 });

describe("checkpoints", () => {
  let artifacts: TrainerArtifacts;
  let ckptPath: string;
  let continued: number[];
  let finalParams: Map<string, Float32Array>;
  const N = 4;
  const K = 5;

  beforeAll(async () => {
    artifacts = compileTrainer(spec(CFG, ADAMW), { eval: false });
    const trainer = await Trainer.create(artifacts, { seed: 1, ...SESSION });
    const rng = new Rng(42);
    await train(trainer, rng, N);
    ckptPath = join(dir, "run.safetensors");
    saveCheckpoint(ckptPath, {
      trainer,
      rng,
      extra: { loader: { epoch: 0, position: N }, schedule: { base: 2e-3 } },
    });
    continued = await train(trainer, rng, K);
    finalParams = trainer.parameters();
    await trainer.release();
  });

  it("resume from the file continues bit for bit (fresh Trainer, fresh Rng)", async () => {
    const ckpt = loadCheckpoint(ckptPath);
    expect(ckpt.step).toBe(N);
    expect(ckpt.extra).toEqual({ loader: { epoch: 0, position: N }, schedule: { base: 2e-3 } });
    expect(ckpt.optimizer).toEqual(ADAMW);
    // A different init seed: everything must come from the file.
    const fresh = await Trainer.create(artifacts, { seed: 777, ...SESSION });
    restoreTrainer(fresh, ckpt);
    expect(fresh.step).toBe(N);
    const resumed = await train(fresh, new Rng(ckpt.rng!), K);
    expect(resumed).toEqual(continued);
    for (const [name, v] of fresh.parameters())
      expect(Buffer.from(v.buffer).equals(Buffer.from(finalParams.get(name)!.buffer)), name).toBe(true);
    await fresh.release();
  });

  it("file layout: timm parameter names, optimizer.<slot>.<name>, exact metadata, no stray temp file", () => {
    const file = readSafetensors(ckptPath);
    const names = [...file.tensors.keys()];
    for (const p of vitParamSpecs(CFG)) {
      expect(file.tensors.get(p.name)?.shape).toEqual(p.shape);
      expect(file.tensors.get(`optimizer.exp_avg.${p.name}`)?.shape).toEqual(p.shape);
      expect(file.tensors.get(`optimizer.exp_avg_sq.${p.name}`)?.shape).toEqual(p.shape);
    }
    expect(names.length).toBe(3 * vitParamSpecs(CFG).length);
    expect(file.metadata).toMatchObject({
      format: "pt",
      "incubator.format": "incubator.checkpoint",
      "incubator.version": "1",
      "incubator.step": String(N),
      "incubator.optimizer": JSON.stringify(ADAMW),
    });
    expect(file.metadata["incubator.rng"]).toMatch(/^[0-9a-f]{8}(,[0-9a-f]{8}){3}$/);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });

  it("the same state always gives the same bytes", async () => {
    const t = await Trainer.create(artifacts, { seed: 5, ...SESSION });
    const a = join(dir, "a.safetensors");
    const b = join(dir, "b.safetensors");
    saveCheckpoint(a, { trainer: t, rng: new Rng(1), extra: { x: [1, 2] } });
    saveCheckpoint(b, { trainer: t, rng: new Rng(1), extra: { x: [1, 2] } });
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    await t.release();
  });

  it("weights-only export: timm names, format pt, loadable against the expected layout", async () => {
    const t = await Trainer.create(artifacts, { seed: 5, ...SESSION });
    const path = join(dir, "weights.safetensors");
    saveWeights(path, t);
    const file = readSafetensors(path);
    expect(file.metadata.format).toBe("pt");
    expect([...file.tensors.keys()].some((k) => k.startsWith("optimizer."))).toBe(false);
    const w = loadWeights(path, { expect: vitParamSpecs(CFG) });
    for (const [name, v] of t.parameters()) expect(w.get(name)).toEqual(v);
    // The other way round: a weights file is not a resumable checkpoint.
    expect(() => loadCheckpoint(path)).toThrow(/weights-only file.*loadWeights/);
    // And a wrong layout names the tensor and both shapes.
    const other = vitParamSpecs({ ...CFG, numClasses: 7 });
    expect(() => loadWeights(path, { expect: other })).toThrow(
      /weights\.safetensors: .*"head\.weight": file has \[5, 32\], expected \[7, 32\]/,
    );
    await t.release();
  });

  describe("errors", () => {
    /** Rewrites the checkpoint with `edit` applied to its tensors and metadata. */
    function variant(
      name: string,
      edit: (
        tensors: Map<string, { data: Float32Array | Uint16Array; shape: number[]; dtype?: "F16" }>,
        md: Record<string, string>,
      ) => void,
    ): string {
      const file = readSafetensors(ckptPath);
      const tensors = new Map(
        [...file.tensors].map(([k, t]) => [
          k,
          { data: tensorData(t) as Float32Array | Uint16Array, shape: t.shape },
        ]),
      );
      const md = { ...file.metadata };
      edit(tensors as never, md);
      const path = join(dir, name);
      writeSafetensors(path, tensors, md);
      return path;
    }

    it("another model: names the tensor and both shapes", async () => {
      const wide = await Trainer.create(
        compileTrainer(spec({ ...CFG, width: 48 }, ADAMW), { eval: false }),
        SESSION,
      );
      const ckpt = loadCheckpoint(ckptPath);
      expect(() => restoreTrainer(wide, ckpt)).toThrow(CheckpointError);
      expect(() => restoreTrainer(wide, ckpt)).toThrow(
        /run\.safetensors does not fit this trainer — shape mismatch: .*"blocks\.0\.attn\.qkv\.weight": checkpoint has \[96, 32\], trainer expects \[144, 48\]/,
      );
      expect(wide.step).toBe(0); // nothing was changed
      const deeper = await Trainer.create(
        compileTrainer(spec({ ...CFG, depth: 4 }, ADAMW), { eval: false }),
        SESSION,
      );
      expect(() => restoreTrainer(deeper, ckpt)).toThrow(
        /missing tensors: "blocks\.3\.attn\.qkv\.weight" \(trainer expects \[96, 32\]\);.* and 4 more/,
      );
      await wide.release();
      await deeper.release();
    });

    it("a missing tensor or a reshaped one", async () => {
      const t = await Trainer.create(artifacts, SESSION);
      const noHead = variant("nohead.safetensors", (ts) => ts.delete("head.bias"));
      expect(() => restoreTrainer(t, loadCheckpoint(noHead))).toThrow(
        /nohead\.safetensors .*missing tensors: "head\.bias" \(trainer expects \[5\]\)/,
      );
      const noState = variant("nostate.safetensors", (ts) => ts.delete("optimizer.exp_avg.pos_embed"));
      expect(() => restoreTrainer(t, loadCheckpoint(noState))).toThrow(
        /missing tensors: "optimizer\.exp_avg\.pos_embed" \(trainer expects \[1, 5, 32\]\)\..*trainable in one and frozen in the other/,
      );
      const reshaped = variant("reshaped.safetensors", (ts) => {
        ts.get("cls_token")!.shape = [32];
      });
      expect(() => restoreTrainer(t, loadCheckpoint(reshaped))).toThrow(
        /"cls_token": checkpoint has \[32\], trainer expects \[1, 1, 32\]/,
      );
      const extra = variant("extra.safetensors", (ts) =>
        ts.set("blocks.9.norm1.weight", { data: new Float32Array(32), shape: [32] }),
      );
      expect(() => restoreTrainer(t, loadCheckpoint(extra))).toThrow(
        /no place for: "blocks\.9\.norm1\.weight" \[32\]/,
      );
      await t.release();
    });

    it("another optimizer, or other hyper-parameters", async () => {
      const ckpt = loadCheckpoint(ckptPath);
      const sgd = await Trainer.create(
        compileTrainer(spec(CFG, { kind: "sgd", momentum: 0.9 }), { eval: false }),
        SESSION,
      );
      expect(() => restoreTrainer(sgd, ckpt)).toThrow(
        /saved with optimizer adamw, but this trainer uses sgd.*optimizerState: "reset"/,
      );
      restoreTrainer(sgd, ckpt, { optimizerState: "reset" });
      expect(sgd.step).toBe(0);
      expect(sgd.parameters().get("head.weight")).toEqual(ckpt.parameters.get("head.weight"));
      const wd = await Trainer.create(
        compileTrainer(spec(CFG, { kind: "adamw", weightDecay: 0.1 }), { eval: false }),
        SESSION,
      );
      expect(() => restoreTrainer(wd, ckpt)).toThrow(/weightDecay: 0\.05 → 0\.1.*allowOptimizerConfigChange/);
      restoreTrainer(wd, ckpt, { allowOptimizerConfigChange: true });
      expect(wd.step).toBe(N);
      await sgd.release();
      await wd.release();
    });

    it("corrupt, truncated, foreign and future files", () => {
      const bytes = readFileSync(ckptPath);
      const truncated = join(dir, "truncated.safetensors");
      writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
      expect(() => loadCheckpoint(truncated)).toThrow(/truncated\.safetensors: .*truncated/);
      const garbage = join(dir, "garbage.safetensors");
      writeFileSync(
        garbage,
        Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{not json at all")]),
      );
      expect(() => loadCheckpoint(garbage)).toThrow(/garbage\.safetensors: header is not valid UTF-8 JSON/);
      expect(() => loadCheckpoint(join(dir, "nope.safetensors"))).toThrow(
        /nope\.safetensors: no such checkpoint file/,
      );

      const future = variant("future.safetensors", (_, md) => {
        md["incubator.version"] = "9";
      });
      expect(() => loadCheckpoint(future)).toThrow(/format version 9 is newer.*upgrade/);
      const noFormat = variant("plain.safetensors", (_, md) => {
        delete md["incubator.format"];
      });
      expect(() => loadCheckpoint(noFormat)).toThrow(/plain\.safetensors: .*no incubator training state/);
      const badRng = variant("badrng.safetensors", (_, md) => {
        md["incubator.rng"] = "xyz";
      });
      expect(() => loadCheckpoint(badRng)).toThrow(
        /badrng\.safetensors: metadata "incubator\.rng" must be four 8-digit hex words/,
      );
      const half = variant("half.safetensors", (ts) => {
        ts.set("head.bias", { data: new Uint16Array(5), shape: [5], dtype: "F16" });
      });
      expect(() => loadCheckpoint(half)).toThrow(
        /half\.safetensors: tensor "head\.bias" is F16; a resumable checkpoint holds F32 only/,
      );
      const badSlot = variant("badslot.safetensors", (ts) => {
        ts.set("optimizer.momentum_buffer.head.bias", { data: new Float32Array(5), shape: [5] });
      });
      expect(() => loadCheckpoint(badSlot)).toThrow(/slot "momentum_buffer" is not a state slot of adamw/);
    });

    it("bad inputs to saveCheckpoint fail before touching the file", async () => {
      const t = await Trainer.create(artifacts, SESSION);
      const before = readFileSync(ckptPath);
      expect(() => saveCheckpoint(ckptPath, { trainer: t, extra: { fn: () => 1 } })).toThrow(
        /extra "fn" is function/,
      );
      expect(readFileSync(ckptPath).equals(before)).toBe(true);
      expect(() => saveCheckpoint(join(dir, "missing-dir", "x.safetensors"), { trainer: t })).toThrow(
        /missing-dir.*does the directory exist/,
      );
      await t.release();
    });
  });
});
