/**
 * The one seeded random generator of the project.
 *
 * Every random choice a run makes — parameter init, data order, augmentation, drop-path and
 * dropout masks — comes from an `Rng` derived from the run's seed, and random tensors are fed to
 * ONNX graphs as inputs. So a run with the same seed is reproducible bit for bit on the same
 * machine, and a checkpoint that stores `rng.state()` resumes the exact same stream.
 *
 * Algorithm: xoshiro128** (Blackman & Vigna), 32-bit state words so everything stays in JS's
 * fast int32 arithmetic; seeded through splitmix32 so that nearby seeds give unrelated streams.
 */

export type RngState = readonly [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a over a string, used to derive independent child streams from labels. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number | RngState) {
    if (typeof seed === "number") {
      if (!Number.isFinite(seed)) throw new Error(`Rng seed must be a finite number, got ${seed}`);
      const next = splitmix32(seed >>> 0);
      this.s0 = next();
      this.s1 = next();
      this.s2 = next();
      this.s3 = next();
    } else {
      [this.s0, this.s1, this.s2, this.s3] = seed.map((x) => x >>> 0) as unknown as [
        number,
        number,
        number,
        number,
      ];
    }
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state is a fixed point
  }

  /** The full generator state; `new Rng(rng.state())` continues the same stream. */
  state(): RngState {
    return [this.s0, this.s1, this.s2, this.s3];
  }

  /**
   * An independent child stream named by `label` (e.g. "init", "data", "droppath/module2").
   * Deriving streams by name keeps one consumer's draws from shifting another's.
   */
  fork(label: string): Rng {
    const next = splitmix32((this.s0 ^ Math.imul(hashLabel(label), 0x27d4eb2f) ^ this.s2) >>> 0);
    return new Rng([next() ^ this.s1, next() ^ this.s3, next(), next()]);
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    this.s0 >>>= 0;
    this.s1 >>>= 0;
    this.s2 >>>= 0;
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`Rng.int needs a positive integer, got ${n}`);
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal draw (Box–Muller; one draw per call so the state stays four words). */
  normal(): number {
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Normal(0, std) truncated to [a, b] (absolute bounds) by rejection: timm's and PyTorch's
   * `trunc_normal_(std, a=-2, b=2)`, the ViT/DeiT init. At std .02 the bounds lie 100 std out and
   * never bind, so the draws have std .02. (Truncating at ±2 *std* instead, as `trunc_normal_tf_`
   * does, gives std 0.88·.02: a 12 % smaller init than the method's.)
   */
  truncNormal(std: number, a = -2, b = 2): number {
    for (;;) {
      const z = this.normal() * std;
      if (z >= a && z <= b) return z;
    }
  }

  /** Fill a Float32Array with truncated-normal draws. */
  fillTruncNormal(out: Float32Array, std: number): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.truncNormal(std);
    return out;
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T>(items: T[] | Int32Array | Uint32Array): typeof items {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i]!;
      items[i] = items[j]!;
      items[j] = tmp;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    this.shuffle(p);
    return p;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
