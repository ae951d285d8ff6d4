import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  decodeSafetensors,
  encodeSafetensors,
  halfToFloat,
  openSafetensors,
  readSafetensors,
  SafetensorsError,
  tensorData,
  toFloat32,
  writeSafetensors,
} from "../../src/engine/checkpoint/safetensors.ts";
import {
  trainingStateFromMetadata,
  trainingStateToMetadata,
} from "../../src/engine/checkpoint/training-state.ts";
import { Rng } from "../../src/engine/rng.ts";

const dir = mkdtempSync(join(tmpdir(), "incubator-st-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Builds a file byte by byte: u64 LE header length, header JSON (unpadded), data. */
function handBuilt(header: object | string, data: number[], declaredLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const len = declaredLength ?? json.length;
  const out = new Uint8Array(8 + json.length + data.length);
  for (let i = 0; i < 8; i++) out[i] = Math.floor(len / 256 ** i) & 0xff;
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe("safetensors", () => {
  it("round-trips every dtype through a file, with metadata", () => {
    const tensors = {
      "blocks.0.attn.qkv.weight": {
        data: Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 3),
        shape: [3, 4],
      },
      pos_embed: { data: Float64Array.of(Math.PI, -1e300), shape: [1, 2] },
      step: { data: BigInt64Array.of(-5n, 2n ** 62n), shape: [2] },
      idx: { data: Int32Array.of(-1, 7, 2147483647), shape: [3] },
      mask: { data: Uint8Array.of(0, 1, 255), shape: [3] },
      scalar: { data: Float32Array.of(2.5), shape: [] },
      empty: { data: new Float32Array(0), shape: [0, 4] },
      half: { data: Uint16Array.of(0x3c00, 0xc000), shape: [2], dtype: "F16" as const },
    };
    const path = join(dir, "rt.safetensors");
    writeSafetensors(path, tensors, { step: "12" });
    const f = readSafetensors(path);
    expect(f.metadata).toEqual({ step: "12" });
    expect([...f.tensors.keys()].sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const got = f.tensors.get(name)!;
      expect(got.shape, name).toEqual(t.shape);
      expect(Array.from(tensorData(got) as ArrayLike<unknown>), name).toEqual(
        Array.from(t.data as ArrayLike<unknown>),
      );
    }
    expect(f.tensors.get("pos_embed")!.dtype).toBe("F64");
    expect(f.tensors.get("step")!.dtype).toBe("I64");
    expect(Array.from(toFloat32(f.tensors.get("half")!))).toEqual([1, -2]);
    // Header is padded to 8 bytes, so data views are aligned (no copy).
    const raw = readFileSync(path);
    const n = Number(new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    // Lazy reader: header only, then one tensor by offset.
    const lazy = openSafetensors(path);
    expect(lazy.info("idx")).toEqual({ dtype: "I32", shape: [3] });
    expect(Array.from(tensorData(lazy.read("idx")) as Int32Array)).toEqual([-1, 7, 2147483647]);
    expect(() => lazy.read("nope")).toThrow(/no tensor "nope"/);
    lazy.close();
  });

  it("reads a file built byte by byte, including F16 and BF16", () => {
    // a: F32 [2] = 1.0, -2.0 (LE bytes); b: BF16 [1] = 0x3FC0 → 1.5; c: F16 [1] = 0x3555 ≈ 0.33325
    const data = [0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0xc0, 0x3f, 0x55, 0x35];
    const bytes = handBuilt(
      {
        __metadata__: { format: "pt" },
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "BF16", shape: [1], data_offsets: [8, 10] },
        c: { dtype: "F16", shape: [1, 1], data_offsets: [10, 12] },
      },
      data,
    );
    const f = decodeSafetensors(bytes);
    expect(f.metadata).toEqual({ format: "pt" });
    expect(Array.from(toFloat32(f.tensors.get("a")!))).toEqual([1, -2]);
    expect(Array.from(toFloat32(f.tensors.get("b")!))).toEqual([1.5]);
    expect(toFloat32(f.tensors.get("c")!)[0]).toBeCloseTo(0.33325, 5);
    expect(halfToFloat(0x7c00)).toBe(Number.POSITIVE_INFINITY);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    // And our encoder produces a byte-identical data section for the same tensors.
    const ours = encodeSafetensors({ a: { data: Float32Array.of(1, -2), shape: [2] } });
    expect(Array.from(ours.subarray(ours.length - 8))).toEqual(data.slice(0, 8));
  });

  it("rejects corrupt files with the tensor named", () => {
    const ok = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    const eight = [0, 0, 0, 0, 0, 0, 0, 0];
    const cases: [Uint8Array, RegExp][] = [
      [Uint8Array.of(1, 2, 3), /too short for a safetensors file/],
      [handBuilt(ok, eight, 10_000), /header length 10000 reaches past the end of the file.*truncated/],
      [handBuilt(ok, eight, 2 ** 40), /exceeds the 100 MB limit/],
      [
        handBuilt(ok, eight.slice(0, 5)),
        /tensor "a": data_offsets \[0, 8\] reach past the data section \(5 bytes\).*truncated/,
      ],
      [handBuilt("{not json", eight), /header is not valid UTF-8 JSON/],
      [
        handBuilt({ a: { dtype: "F128", shape: [1], data_offsets: [0, 8] } }, eight),
        /tensor "a": unknown dtype "F128"/,
      ],
      [
        handBuilt({ a: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, eight),
        /tensor "a": data_offsets span 8 bytes but F32 \[3\] needs 12/,
      ],
      [
        handBuilt({ a: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, eight),
        /tensor "a": data_offsets must be \[begin, end\]/,
      ],
      [
        handBuilt({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 8] } }, eight),
        /tensor "a": shape must be/,
      ],
      [
        handBuilt(
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [1], data_offsets: [4, 8] },
          },
          eight,
        ),
        /bytes \[4, 8\) overlap tensor "a"/,
      ],
      [
        handBuilt({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } }, eight),
        /gap of 4 unclaimed bytes before tensor "a"/,
      ],
      [
        handBuilt({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, eight),
        /4 bytes after the last tensor/,
      ],
      [handBuilt({ __metadata__: { step: 3 }, ...ok }, eight), /"__metadata__\.step" must be a string/],
      [handBuilt("[1,2]", eight), /header must be a JSON object/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => decodeSafetensors(bytes, "ckpt.safetensors"), String(message)).toThrow(message);
      expect(() => decodeSafetensors(bytes)).toThrow(SafetensorsError);
    }
    // From a file: the path is in the message; a truncated real file is caught.
    const good = encodeSafetensors({ w: { data: new Float32Array(16), shape: [4, 4] } });
    const p = join(dir, "truncated.safetensors");
    writeFileSync(p, good.subarray(0, good.length - 1));
    expect(() => readSafetensors(p)).toThrow(/truncated\.safetensors: tensor "w".*truncated/);
    expect(() => openSafetensors(p)).toThrow(/truncated\.safetensors: tensor "w"/);
    expect(() => readSafetensors(join(dir, "missing.safetensors"))).toThrow(
      /missing\.safetensors: cannot read \(ENOENT\)/,
    );
  });

  it("validates what it writes", () => {
    expect(() => encodeSafetensors({ a: { data: new Float32Array(3), shape: [2, 2] } })).toThrow(
      /holds 4 elements but data has 3/,
    );
    expect(() => encodeSafetensors({ a: { data: new Float32Array(2), shape: [2], dtype: "F16" } })).toThrow(
      /dtype F16 needs 2-byte elements but got Float32Array/,
    );
    expect(() => encodeSafetensors({ __metadata__: { data: new Float32Array(1), shape: [1] } })).toThrow(
      /reserved/,
    );
  });

  it("carries step and RNG state in metadata so a run resumes the same stream", () => {
    const rng = new Rng(5);
    rng.uniform();
    const md = trainingStateToMetadata({
      step: 1234,
      rng: rng.state(),
      extra: { loader: { epoch: 2, position: 7 } },
    });
    const path = join(dir, "state.safetensors");
    writeSafetensors(path, { w: { data: Float32Array.of(1), shape: [1] } }, md);
    const back = trainingStateFromMetadata(readSafetensors(path).metadata, path);
    expect(back.step).toBe(1234);
    expect(back.extra).toEqual({ loader: { epoch: 2, position: 7 } });
    const resumed = new Rng(back.rng);
    expect(resumed.uniform()).toBe(rng.uniform());
    expect(() => trainingStateFromMetadata({ format: "pt" }, "x.safetensors")).toThrow(
      /x\.safetensors: .*no resumable training state/,
    );
  });
});
