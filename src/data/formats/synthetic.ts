/**
 * A procedural image classification task that needs no files: the zero-setup demo and the
 * tests train on it.
 *
 * Each class is a combination of factors, read as digits of the class number:
 *   orientation (up to 6, 180°/n apart) × spatial frequency (up to 4 bands)
 *   × pattern (sine grating, square-ish grating, plaid) × blob size (small, large)
 * so up to 144 classes. Every image draws, from its own seeded stream: orientation jitter
 * (±30 % of the class spacing), frequency jitter, random phase, a Gaussian window at a
 * jittered position, random contrast and background, a random colour, a full-field distractor
 * grating of random orientation, and pixel noise.
 *
 * Why this design: random phase makes the classes' mean images nearly identical, so a linear
 * model on raw pixels stays near chance, while oriented-energy features (what a patch embedding
 * plus attention learns quickly) separate them — learnable, but not instantly. Image i is a pure
 * function of (seed, split, i), so any record can be produced in any order (shards, resume).
 */
import { Rng } from "../../engine/rng.ts";
import { checkIndex, checkIndices, type Dataset, newReadStats } from "../dataset.ts";
import { DataError } from "../errors.ts";

export interface SyntheticOptions {
  numClasses: number;
  channels: number;
  height: number;
  width: number;
  /** Number of records in this split. */
  length: number;
  seed: number;
  split: "train" | "test";
  /** Scales noise, distractor contrast and orientation jitter (1 = default; 0 = clean). */
  difficulty?: number;
  indices?: ArrayLike<number>;
}

const MAX_ORIENTATIONS = 6;
const FREQUENCY_BANDS = [2.5, 4, 6, 8.5]; // cycles per image side
const PATTERNS = 3;
const SIZES = 2;
const SQRT6 = Math.sqrt(6);
/** Rendered images are kept (they are pure functions of the index) up to this many bytes. */
const CACHE_BYTES = 256 * 1024 * 1024;
export const SYNTHETIC_MAX_CLASSES = MAX_ORIENTATIONS * FREQUENCY_BANDS.length * PATTERNS * SIZES;

interface Factors {
  orientations: number;
  frequencies: number;
  patterns: number;
}

function factorsFor(numClasses: number): Factors {
  const orientations = Math.min(numClasses, MAX_ORIENTATIONS);
  const frequencies = Math.min(Math.ceil(numClasses / orientations), FREQUENCY_BANDS.length);
  const patterns = Math.min(Math.ceil(numClasses / (orientations * frequencies)), PATTERNS);
  return { orientations, frequencies, patterns };
}

/** Human-readable class names, e.g. "ori60-f4.0-plaid-small". */
function className(k: number, f: Factors): string {
  const o = k % f.orientations;
  const fr = Math.floor(k / f.orientations) % f.frequencies;
  const p = Math.floor(k / (f.orientations * f.frequencies)) % f.patterns;
  const s = Math.floor(k / (f.orientations * f.frequencies * f.patterns));
  const deg = Math.round((o * 180) / f.orientations);
  return `ori${deg}-f${FREQUENCY_BANDS[fr]}-${["sine", "square", "plaid"][p]}${s > 0 ? "-small" : ""}`;
}

/** Renders image `i` with label `k` into `out` (CHW uint8). */
function render(
  k: number,
  rng: Rng,
  o: Required<Pick<SyntheticOptions, "channels" | "height" | "width" | "difficulty">>,
  f: Factors,
  out: Uint8Array,
): void {
  const { channels: C, height: H, width: W, difficulty: d } = o;
  const oriIdx = k % f.orientations;
  const freqIdx = Math.floor(k / f.orientations) % f.frequencies;
  const pattern = Math.floor(k / (f.orientations * f.frequencies)) % f.patterns;
  const small = Math.floor(k / (f.orientations * f.frequencies * f.patterns)) > 0;
  const side = Math.min(H, W);

  const spacing = Math.PI / f.orientations;
  const theta = oriIdx * spacing + (rng.uniform() * 2 - 1) * 0.3 * spacing * Math.min(d, 1.5);
  const cycles = FREQUENCY_BANDS[freqIdx]! * (1 + (rng.uniform() * 2 - 1) * 0.1);
  const omega = (2 * Math.PI * cycles) / side;
  const phase = rng.uniform() * 2 * Math.PI;
  const cx = W / 2 + (rng.uniform() * 2 - 1) * 0.2 * W;
  const cy = H / 2 + (rng.uniform() * 2 - 1) * 0.2 * H;
  const sigma = (small ? 0.14 + rng.uniform() * 0.06 : 0.24 + rng.uniform() * 0.12) * side;
  const contrast = 0.25 + rng.uniform() * 0.25;
  const background = 0.3 + rng.uniform() * 0.4;
  // Distractor: a weak full-field grating of any orientation, so "is there a grating" is not enough.
  const dTheta = rng.uniform() * Math.PI;
  const dOmega = (2 * Math.PI * (2 + rng.uniform() * 7)) / side;
  const dPhase = rng.uniform() * 2 * Math.PI;
  const dContrast = rng.uniform() * 0.12 * d;
  const noiseStd = (0.04 + rng.uniform() * 0.06) * d;
  const colour = new Float32Array(C);
  const tint = new Float32Array(C);
  for (let c = 0; c < C; c++) {
    colour[c] = C === 1 ? 1 : 0.4 + rng.uniform() * 0.6;
    tint[c] = C === 1 ? 0 : (rng.uniform() * 2 - 1) * 0.08;
  }

  const ct = Math.cos(theta);
  const st = Math.sin(theta);
  const dct = Math.cos(dTheta);
  const dst = Math.sin(dTheta);
  const inv2s2 = 1 / (2 * sigma * sigma);
  const plane = H * W;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const px = x + 0.5 - cx;
      const py = y + 0.5 - cy;
      const u = omega * (px * ct + py * st) + phase;
      let g: number;
      if (pattern === 0) g = Math.sin(u);
      else if (pattern === 1) g = Math.tanh(3 * Math.sin(u));
      else g = 0.5 * (Math.sin(u) + Math.sin(omega * (-px * st + py * ct) + phase));
      const env = Math.exp(-(px * px + py * py) * inv2s2);
      const signal = contrast * env * g;
      const distract = dContrast * Math.sin(dOmega * ((x + 0.5) * dct + (y + 0.5) * dst) + dPhase);
      for (let c = 0; c < C; c++) {
        // Pixel noise: sum of two 16-bit uniforms from one draw (triangular, variance 1/6), scaled
        // to std noiseStd — a Box–Muller normal per pixel made rendering 3× slower for no gain.
        const r = rng.nextU32();
        const tri = ((r & 0xffff) + (r >>> 16)) / 65536 - 1;
        const v = background + tint[c]! + colour[c]! * signal + distract + noiseStd * SQRT6 * tri;
        const q = Math.round(v * 255);
        out[c * plane + y * W + x] = q < 0 ? 0 : Math.min(q, 255);
      }
    }
  }
}

export function openSynthetic(opts: SyntheticOptions): Dataset {
  const { numClasses, channels, height, width, length, seed, split } = opts;
  const difficulty = opts.difficulty ?? 1;
  const where = "synthetic dataset";
  const positiveInt = (v: number, name: string, max = 1 << 30) => {
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new DataError(`${name} must be an integer in [1, ${max}], got ${v}`, { source: where });
    }
  };
  positiveInt(numClasses, "numClasses", SYNTHETIC_MAX_CLASSES);
  if (numClasses < 2) throw new DataError("numClasses must be at least 2", { source: where });
  positiveInt(channels, "channels", 16);
  positiveInt(height, "height", 4096);
  positiveInt(width, "width", 4096);
  positiveInt(length, "length");
  if (!(difficulty >= 0)) throw new DataError(`difficulty must be ≥ 0, got ${difficulty}`, { source: where });

  const root = new Rng(seed).fork(`synthetic/${split}`);
  // Exactly balanced labels in a seeded order: i % numClasses, shuffled.
  const all = new Int32Array(length);
  for (let i = 0; i < length; i++) all[i] = i % numClasses;
  root.fork("labels").shuffle(all);
  const indices = opts.indices ? checkIndices(opts.indices, length, where) : undefined;
  const labels = indices ? Int32Array.from(indices, (i) => all[i]!) : all;
  const n = labels.length;
  const factors = factorsFor(numClasses);
  const classNames = Array.from({ length: numClasses }, (_, k) => className(k, factors));
  const params = { channels, height, width, difficulty };
  const stats = newReadStats();
  // Epochs after the first cost nothing when the whole split fits the cache budget.
  const imageBytes = channels * height * width;
  const cache: (Uint8Array | undefined)[] | null = n * imageBytes <= CACHE_BYTES ? new Array(n) : null;

  return {
    numClasses,
    channels,
    height,
    width,
    length: n,
    classNames,
    labels,
    ...(indices ? { sourceIndices: indices } : {}),
    stats,
    getImage(i) {
      checkIndex(i, n, where);
      const cached = cache?.[i];
      if (cached) return cached;
      const record = indices ? indices[i]! : i;
      const out = new Uint8Array(imageBytes);
      render(labels[i]!, root.fork(`image/${record}`), params, factors, out);
      if (cache) cache[i] = out;
      return out;
    },
    getLabel(i) {
      checkIndex(i, n, where);
      return labels[i]!;
    },
  };
}
