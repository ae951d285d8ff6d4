/** `incubator meta import`: the real command, in a child process. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadWeights } from "../../src/engine/checkpoint/checkpoint.ts";
import { vitParamSpecs } from "../../src/engine/models/vit.ts";
import { spawnIncubator } from "../helpers/process.ts";
import { SOURCE_VIT, timmVitTensors, writeTimmCheckpoint } from "../helpers/timm-vit.ts";
import { useTempDir } from "../helpers/tmp.ts";

const dir = useTempDir("meta-cli");
const source = timmVitTensors();
const sourcePath = writeTimmCheckpoint(join(dir, "vit-src.safetensors"), source, "module.");

/** `meta import <source> --modules 4 -o <out>` plus `flags`. */
async function run(out: string, ...flags: string[]) {
  const proc = spawnIncubator(["meta", "import", sourcePath, "--modules", "4", "-o", out, ...flags], {});
  return { code: await proc.exited, output: proc.output() };
}

describe("incubator meta import", () => {
  it("writes the meta model and says which blocks it chose", async () => {
    const out = join(dir, "meta.safetensors");
    const { code, output } = await run(out, "--heads", "4", "--blocks", "0,1,4,5");
    expect(output).toBe(
      [
        'vit-src.safetensors: safetensors, depth 6, width 32, 4 heads, patch 4, 16 px, mlp ratio 4, prefix "module." stripped',
        "meta blocks 0…3 ← source blocks 0,1,4,5",
        `wrote ${out}: 4 blocks with the source's embeddings, final norm and the source's head (10 classes)`,
        "",
      ].join("\n"),
    );
    expect(code).toBe(0);
    const meta = loadWeights(out, { expect: vitParamSpecs({ ...SOURCE_VIT, depth: 4 }) });
    const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));
    expect(same(meta.get("blocks.2.mlp.fc1.weight")!, source.get("blocks.4.mlp.fc1.weight")!.data)).toBe(
      true,
    );
  }, 30_000);

  it("exits 1 with one line naming the flag when the input is wrong", async () => {
    const out = join(dir, "never.safetensors");
    const duplicate = await run(out, "--heads", "4", "--blocks", "0,2,2,5");
    expect(duplicate).toEqual({
      code: 1,
      output: "incubator: --blocks: blocks[2] (2) repeats blocks[1]: each meta stage needs its own block\n",
    });
    const heads = await run(out, "--heads", "four");
    expect(heads).toEqual({ code: 1, output: 'incubator: --heads: "four" is not a whole number\n' });
    expect(existsSync(out)).toBe(false);
  }, 30_000);
});
