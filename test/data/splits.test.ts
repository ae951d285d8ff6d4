import { describe, expect, it } from "vitest";
import { balancedShards, classCounts, stratifiedSplit } from "../../src/data/splits.ts";

// Unbalanced labels: class c has 50 + 13c records, in a scrambled order.
const labels = Int32Array.from(
  Array.from({ length: 7 }, (_, c) => new Array(50 + 13 * c).fill(c)).flat(),
).map((_, i, a) => a[(i * 97) % a.length]!);

describe("class-balanced shards", () => {
  it("are disjoint, cover every record, and balance each class within one", () => {
    for (const k of [1, 2, 3, 4, 7]) {
      const shards = balancedShards(labels, k, 11);
      const seen = new Int32Array(labels.length);
      for (const s of shards) for (const i of s) seen[i]!++;
      expect(seen.every((v) => v === 1)).toBe(true);
      const sizes = shards.map((s) => s.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      const counts = classCounts(labels, shards, 7);
      for (let c = 0; c < 7; c++) {
        const col = counts.map((row) => row[c]!);
        expect(Math.max(...col) - Math.min(...col)).toBeLessThanOrEqual(1);
      }
      for (const s of shards) expect(Array.from(s)).toEqual(Array.from(s).sort((a, b) => a - b));
    }
  });

  it("are deterministic from the seed and differ across seeds", () => {
    const a = balancedShards(labels, 4, 1);
    const b = balancedShards(labels, 4, 1);
    const c = balancedShards(labels, 4, 2);
    expect(a.map((s) => Array.from(s))).toEqual(b.map((s) => Array.from(s)));
    expect(a.map((s) => Array.from(s))).not.toEqual(c.map((s) => Array.from(s)));
  });

  it("shard a subset (e.g. the training part after a validation hold-out)", () => {
    const { train, val } = stratifiedSplit(labels, 0.1, 3);
    const shards = balancedShards(labels, 4, 3, train);
    const all = shards.flatMap((s) => Array.from(s)).sort((x, y) => x - y);
    expect(all).toEqual(Array.from(train));
    const valSet = new Set(val);
    expect(all.some((i) => valSet.has(i))).toBe(false);
  });

  it("reject impossible requests", () => {
    expect(() => balancedShards(labels, 0, 1)).toThrow(/positive integer/);
    expect(() => balancedShards(Int32Array.of(0, 1), 3, 1)).toThrow(/cannot split 2 records into 3/);
  });
});

describe("stratified train/validation split", () => {
  it("holds out the same fraction of every class, exactly round(n·f) in all", () => {
    const { train, val } = stratifiedSplit(labels, 0.2, 9);
    expect(val.length).toBe(Math.round(labels.length * 0.2));
    expect(train.length + val.length).toBe(labels.length);
    const both = new Set([...train, ...val]);
    expect(both.size).toBe(labels.length);
    const counts = classCounts(labels, [val], 7)[0]!;
    counts.forEach((n, c) => {
      expect(Math.abs(n - (50 + 13 * c) * 0.2)).toBeLessThanOrEqual(1);
    });
    expect(() => stratifiedSplit(labels, 1, 0)).toThrow(/fraction must be in \(0, 1\)/);
  });
});
