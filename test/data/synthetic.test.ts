import { describe, expect, it } from "vitest";
import { openSynthetic } from "../../src/data/formats/synthetic.ts";
import { equalBytes } from "./helpers.ts";

const base = {
  numClasses: 10,
  channels: 3,
  height: 16,
  width: 16,
  length: 400,
  seed: 5,
  split: "train" as const,
};

describe("synthetic dataset", () => {
  it("is a pure function of (seed, split, index) and exactly class-balanced", () => {
    const a = openSynthetic(base);
    const b = openSynthetic(base);
    const other = openSynthetic({ ...base, seed: 6 });
    const test = openSynthetic({ ...base, split: "test" });
    expect(equalBytes(a.getImage(17), b.getImage(17))).toBe(true);
    expect(equalBytes(a.getImage(17), other.getImage(17))).toBe(false);
    expect(equalBytes(a.getImage(17), test.getImage(17))).toBe(false);
    const counts = new Array(10).fill(0);
    for (const y of a.labels) counts[y]++;
    expect(counts).toEqual(new Array(10).fill(40));
    const shard = openSynthetic({ ...base, indices: [17, 3] });
    expect(equalBytes(shard.getImage(0), a.getImage(17))).toBe(true);
    expect(shard.getLabel(1)).toBe(a.getLabel(3));
  });

  it("supports any channel count, size and class count up to the limit, with clear errors beyond", () => {
    const g = openSynthetic({ ...base, channels: 1, height: 28, width: 20, numClasses: 37 });
    expect(g.getImage(0).length).toBe(28 * 20);
    expect(new Set(g.classNames).size).toBe(37);
    expect(() => openSynthetic({ ...base, numClasses: 1000 })).toThrow(
      /numClasses must be an integer in \[1, 144\]/,
    );
  });

  it("is learnable from oriented energy but not from raw pixel means", () => {
    // Nearest-centroid on two feature sets: raw pixels (phase is random, so class means are
    // alike → near chance) and a gradient-orientation histogram (separates orientation classes).
    const train = openSynthetic({ ...base, length: 600, channels: 1, height: 24, width: 24 });
    const test = openSynthetic({ ...base, length: 300, channels: 1, height: 24, width: 24, split: "test" });
    const raw = (img: Uint8Array | Float32Array) => Float64Array.from(img, (v) => v / 255);
    const orient = (img: Uint8Array | Float32Array) => {
      const f = new Float64Array(12);
      for (let y = 1; y < 23; y++) {
        for (let x = 1; x < 23; x++) {
          const gx = img[y * 24 + x + 1]! - img[y * 24 + x - 1]!;
          const gy = img[(y + 1) * 24 + x]! - img[(y - 1) * 24 + x]!;
          const m = gx * gx + gy * gy;
          const bin = Math.floor(((Math.atan2(gy, gx) + Math.PI) / (2 * Math.PI)) * 12) % 12;
          f[bin]! += m;
        }
      }
      const s = f.reduce((a, b) => a + b, 0) || 1;
      return f.map((v) => v / s);
    };
    const accuracy = (feat: (img: Uint8Array | Float32Array) => Float64Array) => {
      const dim = feat(train.getImage(0)).length;
      const cent = Array.from({ length: 10 }, () => new Float64Array(dim));
      const n = new Array(10).fill(0);
      for (let i = 0; i < train.length; i++) {
        const f = feat(train.getImage(i));
        const y = train.getLabel(i);
        n[y]++;
        for (let d = 0; d < dim; d++) cent[y]![d]! += f[d]!;
      }
      cent.forEach((c, y) => {
        for (let d = 0; d < dim; d++) c[d]! /= n[y];
      });
      let correct = 0;
      for (let i = 0; i < test.length; i++) {
        const f = feat(test.getImage(i));
        let best = -1;
        let bestD = Number.POSITIVE_INFINITY;
        cent.forEach((c, y) => {
          let dd = 0;
          for (let d = 0; d < dim; d++) dd += (f[d]! - c[d]!) ** 2;
          if (dd < bestD) [bestD, best] = [dd, y];
        });
        if (best === test.getLabel(i)) correct++;
      }
      return correct / test.length;
    };
    const rawAcc = accuracy(raw);
    const orientAcc = accuracy(orient);
    expect(rawAcc).toBeLessThan(0.3); // chance is 0.1
    expect(orientAcc).toBeGreaterThan(0.3);
    expect(orientAcc).toBeLessThan(0.95); // a hand-made feature does not solve it outright
  });
});
