/**
 * Class-balanced sharding (decentralised modular training: K workers, each sees only its own
 * shard) and stratified train/validation splits. Both work on labels alone, so a worker can
 * compute its shard before it reads any image, then ask the reader for just those records.
 * Both are pure functions of (labels, seed): every worker derives the same partition.
 */
import { Rng } from "../engine/rng.ts";
import { DataError } from "./errors.ts";

function groupByClass(labels: Int32Array, subset: Int32Array | undefined): Map<number, number[]> {
  const byClass = new Map<number, number[]>();
  const n = subset ? subset.length : labels.length;
  for (let k = 0; k < n; k++) {
    const i = subset ? subset[k]! : k;
    if (i < 0 || i >= labels.length) {
      throw new DataError(`subset[${k}] = ${i} is out of range for ${labels.length} labels`);
    }
    const y = labels[i]!;
    const list = byClass.get(y);
    if (list) list.push(i);
    else byClass.set(y, [i]);
  }
  return byClass;
}

/** Classes in ascending order, each with its members shuffled by its own seeded stream. */
function shuffledClasses(labels: Int32Array, seed: number, label: string, subset?: Int32Array): number[][] {
  const byClass = groupByClass(labels, subset);
  const rng = new Rng(seed).fork(label);
  return [...byClass.keys()]
    .sort((a, b) => a - b)
    .map((c) => rng.fork(`class/${c}`).shuffle(byClass.get(c)!) as number[]);
}

/**
 * Splits the records (all, or `subset`) into `count` disjoint shards whose union is the input.
 * Each class is dealt round-robin, continuing where the previous class stopped, so every shard
 * gets within one of the same count per class, and shard sizes differ by at most one.
 * Shards are returned sorted ascending (sequential reads; the loader shuffles anyway).
 */
export function balancedShards(
  labels: Int32Array,
  count: number,
  seed: number,
  subset?: Int32Array,
): Int32Array[] {
  if (!Number.isInteger(count) || count < 1) {
    throw new DataError(`shard count must be a positive integer, got ${count}`);
  }
  const n = subset ? subset.length : labels.length;
  if (count > n) throw new DataError(`cannot split ${n} records into ${count} non-empty shards`);
  const buckets: number[][] = Array.from({ length: count }, () => []);
  let next = 0;
  for (const members of shuffledClasses(labels, seed, "shards", subset)) {
    for (const i of members) {
      buckets[next]!.push(i);
      next = (next + 1) % count;
    }
  }
  return buckets.map((b) => Int32Array.from(b).sort());
}

/**
 * Stratified split: a `fraction` of the records goes to validation, the same fraction of each
 * class (largest-remainder rounding so the total is round(n·fraction) exactly).
 */
export function stratifiedSplit(
  labels: Int32Array,
  fraction: number,
  seed: number,
  subset?: Int32Array,
): { train: Int32Array; val: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new DataError(`validation fraction must be in (0, 1), got ${fraction}`);
  }
  const classes = shuffledClasses(labels, seed, "validation", subset);
  const n = classes.reduce((s, m) => s + m.length, 0);
  const target = Math.round(n * fraction);
  const quota = classes.map((m) => Math.floor(m.length * fraction));
  let remaining = target - quota.reduce((s, q) => s + q, 0);
  const byRemainder = classes
    .map((m, c) => ({ c, r: m.length * fraction - quota[c]! }))
    .sort((a, b) => b.r - a.r || a.c - b.c);
  for (const { c } of byRemainder) {
    if (remaining <= 0) break;
    if (quota[c]! < classes[c]!.length) {
      quota[c]!++;
      remaining--;
    }
  }
  const train: number[] = [];
  const val: number[] = [];
  classes.forEach((members, c) => {
    val.push(...members.slice(0, quota[c]));
    train.push(...members.slice(quota[c]));
  });
  return { train: Int32Array.from(train).sort(), val: Int32Array.from(val).sort() };
}

/** Per-shard, per-class record counts: counts[s][c]. For logs and checks. */
export function classCounts(
  labels: Int32Array,
  shards: readonly Int32Array[],
  numClasses: number,
): number[][] {
  return shards.map((shard) => {
    const counts = new Array<number>(numClasses).fill(0);
    for (const i of shard) counts[labels[i]!]!++;
    return counts;
  });
}
