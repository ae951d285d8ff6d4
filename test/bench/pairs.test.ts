import { describe, expect, it } from "vitest";
import { formatVariant, parseVariant } from "../../bench/engine.ts";
import { alternate, pairRatios, spread } from "../../bench/pairs.ts";

describe("alternating pairs", () => {
  it("runs A then B in every pair and takes per-pair ratios, not ratios of medians", () => {
    const order: string[] = [];
    let i = 0;
    // Side A slows down pair by pair (drifting load); B drifts the same way, so every per-pair
    // ratio is 2 even though the medians of each side alone come from different pairs.
    const a = () => {
      order.push("a");
      return { steps_per_s: 20 / (1 + i), peak_rss_mb: 100 };
    };
    const b = () => {
      order.push("b");
      const r = { steps_per_s: 10 / (1 + i), peak_rss_mb: 200 + i };
      i++;
      return r;
    };
    const pairs = alternate(4, a, b);
    expect(order).toEqual(["a", "b", "a", "b", "a", "b", "a", "b"]);
    const r = pairRatios(pairs, "a");
    expect(r.speed).toEqual({ median: 2, min: 2, max: 2 });
    expect(r.rss.max).toBeCloseTo(100 / 200);
    expect(r.rss.min).toBeCloseTo(100 / 203);
    expect(pairRatios(pairs, "b").speed.median).toBe(0.5);
  });

  it("median of an even count is the mean of the middle two", () => {
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
  });

  it("refuses a pair count that is not a positive whole number", () => {
    const side = () => ({ steps_per_s: 1, peak_rss_mb: 1 });
    expect(() => alternate(0, side, side)).toThrow(/--pairs must be a positive whole number/);
  });
});

describe("engine variants", () => {
  it("parses key=value lists into typed switches", () => {
    expect(parseVariant("memArena=false, contribOps=true,optLevel=basic", "--compare")).toEqual({
      memArena: false,
      contribOps: true,
      optLevel: "basic",
    });
    expect(parseVariant("", "--base")).toEqual({});
    expect(formatVariant({})).toBe("default");
    expect(formatVariant({ memPattern: false })).toBe("memPattern=false");
  });

  it("names the flag, the key and the allowed values on bad input", () => {
    expect(() => parseVariant("memArena=off", "--compare")).toThrow(
      '--compare: memArena must be true or false, got "off"',
    );
    expect(() => parseVariant("speed=fast", "--base")).toThrow(
      /--base: unknown key "speed" \(keys: contribOps/,
    );
    expect(() => parseVariant("optLevel=max", "--compare")).toThrow(/optLevel must be one of disabled/);
    expect(() => parseVariant("contribOps", "--compare")).toThrow(/is not key=value/);
  });
});
