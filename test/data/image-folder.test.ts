import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { describe, expect, it } from "vitest";
import { openImageFolder } from "../../src/data/formats/image-folder.ts";
import { openDataset } from "../../src/data/registry.ts";
import { tempDir } from "./helpers.ts";

const root = tempDir("folder");

function png(width: number, height: number, rgb: (x: number, y: number) => [number, number, number]): Buffer {
  const img = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = rgb(x, y);
      const o = 4 * (y * width + x);
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  return PNG.sync.write(img);
}

function jpg(width: number, height: number, rgb: [number, number, number]): Buffer {
  const data = Buffer.alloc(width * height * 4);
  for (let p = 0; p < width * height; p++) data.set([...rgb, 255], 4 * p);
  return jpeg.encode({ width, height, data }, 95).data;
}

for (const split of ["train", "test"]) {
  mkdirSync(join(root, split, "cat"), { recursive: true });
  mkdirSync(join(root, split, "dog"), { recursive: true });
  // cat: red, left half bright; dog: blue JPEG
  writeFileSync(
    join(root, split, "cat", "b.png"),
    png(40, 20, (x) => (x < 20 ? [250, 0, 0] : [50, 0, 0])),
  );
  writeFileSync(
    join(root, split, "cat", "a.png"),
    png(8, 8, () => [200, 10, 10]),
  );
  writeFileSync(join(root, split, "dog", "x.JPG"), jpg(16, 16, [0, 0, 240]));
  writeFileSync(join(root, split, "dog", "notes.txt"), "ignored");
}

describe("image folder reader", () => {
  it("lists classes and files in code-point order and decodes PNG and JPEG", async () => {
    const ds = await openDataset({ format: "image-folder", path: root, imageSize: 8, split: "train" });
    expect(ds.classNames).toEqual(["cat", "dog"]);
    expect(ds.length).toBe(3);
    expect(Array.from(ds.labels)).toEqual([0, 0, 1]);
    const a = ds.getImage(0); // a.png, uniform (200, 10, 10)
    expect([a[0], a[64], a[128]]).toEqual([200, 10, 10]);
    const dog = ds.getImage(2);
    expect(dog[0]).toBeLessThan(10);
    expect(Math.abs(dog[128]! - 240)).toBeLessThanOrEqual(3); // JPEG is lossy
    expect(ds.stats.bytesRead).toBeGreaterThan(0);
  });

  it("resizes with 'cover' (centre crop) and 'stretch'", () => {
    const cover = openImageFolder({ root: join(root, "train"), height: 4, width: 4, fit: "cover" });
    const stretch = openImageFolder({ root: join(root, "train"), height: 4, width: 4, fit: "stretch" });
    // b.png is 40×20, left half bright (250), right half dark (50). Cover keeps the centre
    // 20×20 (columns 10..30): the edge falls mid-image and the antialiasing filter blurs it
    // symmetrically. Stretch keeps all 40 columns: same edge position, 4 output columns.
    const c = Array.from(cover.getImage(1).subarray(0, 4));
    const s = Array.from(stretch.getImage(1).subarray(0, 4));
    expect(c[0]).toBe(250);
    expect(c[3]).toBe(50);
    expect(c[1]! + c[2]!).toBe(300);
    expect(c[1]).toBeGreaterThan(150);
    expect(s[0]).toBe(250);
    expect(s[3]).toBe(50);
    expect(s[1]! + s[2]!).toBe(300);
    // Rows are uniform in b.png, so every row equals the first.
    expect(Array.from(cover.getImage(1).subarray(12, 16))).toEqual(c);
    const gray = openImageFolder({ root: join(root, "train"), height: 4, width: 4, channels: 1 });
    expect(gray.getImage(0)[0]).toBe(Math.round((200 * 299 + 10 * 587 + 10 * 114) / 1000));
  });

  it("reports corrupt images, empty classes and missing roots by path", () => {
    const bad = tempDir("folder-bad");
    mkdirSync(join(bad, "a"));
    mkdirSync(join(bad, "b"));
    writeFileSync(
      join(bad, "a", "broken.png"),
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]),
    );
    writeFileSync(join(bad, "b", "fake.jpg"), "not an image at all");
    const ds = openImageFolder({ root: bad, height: 4, width: 4 });
    expect(() => ds.getImage(0)).toThrow(/broken\.png: cannot decode PNG image/);
    expect(() => ds.getImage(1)).toThrow(/fake\.jpg: not a PNG or JPEG image/);
    mkdirSync(join(bad, "c"));
    expect(() => openImageFolder({ root: bad, height: 4, width: 4 })).toThrow(
      /class folder\(s\) c contain no/,
    );
    expect(() => openImageFolder({ root: join(bad, "nope"), height: 4, width: 4 })).toThrow(
      /nope: the folder does not exist/,
    );
    expect(() => openImageFolder({ root: bad, height: 4, width: 4, classes: ["a", "zebra"] })).toThrow(
      /zebra not found/,
    );
  });
});
