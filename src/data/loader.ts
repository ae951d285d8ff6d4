/**
 * `BatchLoader`: seeded, resumable mini-batches with augmentation, over a dataset or a subset of
 * it (a shard), one batch in memory at a time.
 *
 * Determinism: every random draw comes from streams forked by name off one root Rng —
 * `order/<epoch>` for the epoch's permutation, `batch/<epoch>/<b>` for a batch, and
 * `sample/<j>` inside it for each image — so a batch's bytes depend only on (seed, epoch,
 * batch number, config, data), never on what was produced before. Resume is therefore exact:
 * the saved state is just (epoch, position, root rng state) plus a fingerprint that refuses a
 * state taken with a different dataset, shard or config. It also means batches could be
 * produced out of order or in parallel workers without changing a byte.
 */
import { Rng, type RngState } from "../engine/rng.ts";
import { type MixOptions, mixBatch, mixTargets } from "./augment/mix.ts";
import { type AugmentConfig, type BuiltTransform, buildTransform } from "./augment/pipeline.ts";
import { checkIndices, type Dataset } from "./dataset.ts";
import { DataError } from "./errors.ts";

export interface BatchLoaderOptions {
  batchSize: number;
  seed: number;
  /** Dataset records to draw from (e.g. a shard); default all. */
  indices?: ArrayLike<number>;
  /** Reshuffle every epoch (default true); false gives the subset's order (eval). */
  shuffle?: boolean;
  /** Drop the last incomplete batch (default true: constant batch shape for a compiled graph). */
  dropLast?: boolean;
  /** Per-image transform config (see augment/pipeline.ts); default: normalise only. */
  augment?: AugmentConfig;
  /** Mixup / CutMix / label smoothing; when set, batches carry soft `targets`. */
  mix?: Partial<Omit<MixOptions, "numClasses">>;
  /** Label array type: int32 (default) or int64 (what ONNX class-index inputs usually want). */
  labelType?: "int32" | "int64";
}

export interface Batch {
  /** [B, C, H, W], normalised. */
  images: Float32Array;
  labels: Int32Array | BigInt64Array;
  /** [B, numClasses] soft targets, when mixing or label smoothing is configured. */
  targets?: Float32Array;
  shape: readonly [number, number, number, number];
  /** Dataset indices of the batch's images, in batch order. */
  indices: Int32Array;
  epoch: number;
  /** Batch number within the epoch. */
  position: number;
  /** Global batch count since the start of training (0-based). */
  iteration: number;
  mix?: { method: "none" | "mixup" | "cutmix"; lambda: number };
}

export interface LoaderState {
  version: 1;
  epoch: number;
  /** Batches already produced in `epoch`. */
  position: number;
  iteration: number;
  rng: RngState;
  /** Guards against restoring into a loader over other data or with another config. */
  fingerprint: string;
}

const DEFAULT_MIX = { mixupAlpha: 0, cutmixAlpha: 0, prob: 1, switchProb: 0.5, labelSmoothing: 0 };

export class BatchLoader {
  readonly batchSize: number;
  readonly batchesPerEpoch: number;
  private readonly subset: Int32Array;
  private readonly transform: BuiltTransform;
  private readonly mix: MixOptions | null;
  private readonly shuffle: boolean;
  private readonly dropLast: boolean;
  private readonly labelType: "int32" | "int64";
  private readonly fingerprint: string;
  private root: Rng;
  private epoch = 0;
  private position = 0;
  private iteration = 0;
  private order: Int32Array | null = null; // permutation of the current epoch (cached)
  private orderEpoch = -1;

  constructor(
    private readonly dataset: Dataset,
    options: BatchLoaderOptions,
  ) {
    const { batchSize } = options;
    this.subset = options.indices
      ? checkIndices(options.indices, dataset.length, "BatchLoader indices")
      : Int32Array.from({ length: dataset.length }, (_, i) => i);
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new DataError(`batchSize must be a positive integer, got ${batchSize}`, {
        source: "BatchLoader",
      });
    }
    this.dropLast = options.dropLast ?? true;
    this.batchesPerEpoch = this.dropLast
      ? Math.floor(this.subset.length / batchSize)
      : Math.ceil(this.subset.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new DataError(
        `${this.subset.length} records make no full batch of ${batchSize}; lower batchSize or set dropLast: false`,
        { source: "BatchLoader" },
      );
    }
    this.batchSize = batchSize;
    this.shuffle = options.shuffle ?? true;
    this.labelType = options.labelType ?? "int32";
    this.transform = buildTransform(options.augment ?? {}, dataset);
    const mix = options.mix ? { ...DEFAULT_MIX, ...options.mix, numClasses: dataset.numClasses } : null;
    if (mix) {
      for (const [k, v] of Object.entries(mix)) {
        if (typeof v !== "number" || !(v >= 0)) {
          throw new DataError(`mix.${k} must be a number ≥ 0, got ${v}`, { source: "BatchLoader" });
        }
      }
      if (mix.prob > 1 || mix.switchProb > 1 || mix.labelSmoothing >= 1) {
        throw new DataError("mix.prob and mix.switchProb must be ≤ 1 and mix.labelSmoothing < 1", {
          source: "BatchLoader",
        });
      }
    }
    this.mix = mix;
    this.root = new Rng(options.seed).fork("loader");
    this.fingerprint = fingerprintOf([
      dataset.length,
      dataset.channels,
      dataset.height,
      dataset.width,
      dataset.numClasses,
      batchSize,
      this.dropLast,
      this.shuffle,
      this.labelType,
      JSON.stringify(this.transform.config),
      JSON.stringify(mix),
      hashInts(this.subset),
      hashInts(dataset.labels),
    ]);
  }

  /** Output image shape [C, H, W]. */
  get imageShape(): readonly [number, number, number] {
    return [this.transform.channels, this.transform.height, this.transform.width];
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  state(): LoaderState {
    return {
      version: 1,
      epoch: this.epoch,
      position: this.position,
      iteration: this.iteration,
      rng: this.root.state(),
      fingerprint: this.fingerprint,
    };
  }

  /** Continues exactly where `state` was taken (same dataset, subset, config required). */
  restore(state: LoaderState): void {
    if (state?.version !== 1)
      throw new DataError(`unsupported loader state version ${state?.version}`, {
        source: "BatchLoader.restore",
      });
    if (state.fingerprint !== this.fingerprint) {
      throw new DataError(
        "the saved loader state belongs to a loader over different data, shard, batch size or augmentation " +
          "config; resume with the same dataset spec and training config, or start a fresh loader",
        { source: "BatchLoader.restore" },
      );
    }
    const ok = (v: number) => Number.isInteger(v) && v >= 0;
    if (
      !ok(state.epoch) ||
      !ok(state.iteration) ||
      !ok(state.position) ||
      state.position > this.batchesPerEpoch
    ) {
      throw new DataError(`loader state has invalid counters ${JSON.stringify(state)}`, {
        source: "BatchLoader.restore",
      });
    }
    this.root = new Rng(state.rng);
    this.epoch = state.epoch;
    this.position = state.position;
    this.iteration = state.iteration;
    this.order = null;
    this.orderEpoch = -1;
  }

  private epochOrder(epoch: number): Int32Array {
    if (this.orderEpoch !== epoch || !this.order) {
      const order = Int32Array.from(this.subset);
      if (this.shuffle) this.root.fork(`order/${epoch}`).shuffle(order);
      this.order = order;
      this.orderEpoch = epoch;
    }
    return this.order;
  }

  /** The next batch; epochs roll over automatically (an infinite stream). */
  next(): Batch {
    if (this.position >= this.batchesPerEpoch) {
      this.epoch++;
      this.position = 0;
    }
    const batch = this.produce(this.epoch, this.position, this.iteration);
    this.position++;
    this.iteration++;
    return batch;
  }

  /** The remaining batches of the current epoch (all of them when called at an epoch start). */
  *epochBatches(): Generator<Batch> {
    if (this.position >= this.batchesPerEpoch) {
      this.epoch++;
      this.position = 0;
    }
    const epoch = this.epoch;
    while (this.epoch === epoch && this.position < this.batchesPerEpoch) yield this.next();
  }

  private produce(epoch: number, position: number, iteration: number): Batch {
    const order = this.epochOrder(epoch);
    const start = position * this.batchSize;
    const B = Math.min(this.batchSize, order.length - start);
    const [C, H, W] = this.imageShape;
    const size = C * H * W;
    const images = new Float32Array(B * size);
    const labels32 = new Int32Array(B);
    const indices = order.slice(start, start + B);
    const batchRng = this.root.fork(`batch/${epoch}/${position}`);
    for (let j = 0; j < B; j++) {
      const i = indices[j]!;
      const out = this.transform.apply(this.dataset.getImage(i), batchRng.fork(`sample/${j}`));
      images.set(out, j * size);
      labels32[j] = this.dataset.getLabel(i);
    }
    const labels = this.labelType === "int64" ? BigInt64Array.from(labels32, (v) => BigInt(v)) : labels32;
    const batch: Batch = { images, labels, shape: [B, C, H, W], indices, epoch, position, iteration };
    if (this.mix) {
      const mixing = this.mix.mixupAlpha > 0 || this.mix.cutmixAlpha > 0;
      if (mixing) {
        const r = mixBatch(
          images,
          labels32,
          { batch: B, channels: C, height: H, width: W },
          batchRng.fork("mix"),
          this.mix,
        );
        batch.targets = r.targets;
        batch.mix = { method: r.method, lambda: r.lambda };
      } else {
        batch.targets = mixTargets(labels32, this.mix.numClasses, 1, this.mix.labelSmoothing);
      }
    }
    return batch;
  }
}

function hashInts(a: Int32Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < a.length; i++) {
    h = Math.imul(h ^ (a[i]! & 0xffff), 0x01000193);
    h = Math.imul(h ^ (a[i]! >>> 16), 0x01000193);
  }
  return `${a.length}:${(h >>> 0).toString(16)}`;
}

function fingerprintOf(parts: unknown[]): string {
  const s = JSON.stringify(parts);
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}
