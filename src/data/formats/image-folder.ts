/**
 * A folder of class subdirectories (`root/<class>/<image>.png|jpg`), the torchvision
 * ImageFolder layout. Classes are the subdirectory names sorted by code point (so the label of a
 * class never depends on locale); files are sorted likewise. Images are decoded on demand and
 * resized to a fixed size, so memory stays bounded whatever the dataset's size.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { checkIndex, checkIndices, type Dataset, newReadStats } from "../dataset.ts";
import { DataError } from "../errors.ts";
import { decodeImage, rgbaToChw } from "../image/decode.ts";
import { resampleChw } from "../image/resample.ts";

const IMAGE_EXTENSIONS = new Set([".png", ".jpg", ".jpeg"]);

export interface ImageFolderOptions {
  root: string;
  height: number;
  width: number;
  channels?: 1 | 3;
  /**
   * "cover": scale so the image covers the target, then centre-crop (no distortion; the
   * usual eval transform). "stretch": scale each axis independently to the target.
   */
  fit?: "cover" | "stretch";
  /** Fix the class list (and so the label numbering), e.g. to make a test split match train. */
  classes?: readonly string[];
  indices?: ArrayLike<number>;
}

const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DataError(
      code === "ENOENT" ? "the folder does not exist; check the dataset path" : `cannot list it (${code})`,
      { source: path, cause: err },
    );
  }
}

/** Scans the folder tree: files and labels, without reading any image. */
export function scanImageFolder(
  root: string,
  classes?: readonly string[],
): { files: string[]; labels: Int32Array; classes: string[] } {
  const found = listDir(root)
    .filter((name) => !name.startsWith(".") && statSync(join(root, name)).isDirectory())
    .sort(byCodePoint);
  const classList = classes ? [...classes] : found;
  if (classList.length === 0) {
    throw new DataError(
      "no class subdirectories found; the layout must be <root>/<class name>/<image files>",
      { source: root },
    );
  }
  const missing = classList.filter((c) => !found.includes(c));
  if (missing.length > 0) {
    throw new DataError(`class folder(s) ${missing.join(", ")} not found under the root`, { source: root });
  }
  const files: string[] = [];
  const labels: number[] = [];
  const empty: string[] = [];
  classList.forEach((cls, label) => {
    const dir = join(root, cls);
    const images = listDir(dir)
      .filter((f) => !f.startsWith(".") && IMAGE_EXTENSIONS.has(extname(f).toLowerCase()))
      .sort(byCodePoint);
    if (images.length === 0) empty.push(cls);
    for (const f of images) {
      files.push(join(dir, f));
      labels.push(label);
    }
  });
  if (empty.length > 0) {
    throw new DataError(
      `class folder(s) ${empty.join(", ")} contain no .png/.jpg/.jpeg files; remove them or add images`,
      { source: root },
    );
  }
  return { files, labels: Int32Array.from(labels), classes: classList };
}

export function openImageFolder(opts: ImageFolderOptions): Dataset {
  const { height, width } = opts;
  const channels = opts.channels ?? 3;
  const fit = opts.fit ?? "cover";
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new DataError(`image-folder needs a positive integer size, got ${height}×${width}`, {
      source: opts.root,
    });
  }
  const scan = scanImageFolder(opts.root, opts.classes);
  const indices = opts.indices
    ? checkIndices(opts.indices, scan.files.length, opts.root)
    : Int32Array.from({ length: scan.files.length }, (_, i) => i);
  const files = Array.from(indices, (i) => scan.files[i]!);
  const labels = Int32Array.from(indices, (i) => scan.labels[i]!);
  const stats = newReadStats();

  return {
    numClasses: scan.classes.length,
    channels,
    height,
    width,
    length: files.length,
    classNames: scan.classes,
    labels,
    sourceIndices: indices,
    stats,
    getImage(i) {
      checkIndex(i, files.length, opts.root);
      const path = files[i]!;
      const bytes = readFileSync(path);
      stats.bytesRead += bytes.length;
      stats.filesOpened++;
      const img = decodeImage(bytes, path);
      const chw = rgbaToChw(img, channels);
      let box = { x: 0, y: 0, w: img.width, h: img.height };
      if (fit === "cover") {
        // Largest centred region with the target's aspect ratio.
        const scale = Math.min(img.width / width, img.height / height);
        const bw = width * scale;
        const bh = height * scale;
        box = { x: (img.width - bw) / 2, y: (img.height - bh) / 2, w: bw, h: bh };
      }
      const resized = resampleChw(chw, channels, img.height, img.width, box, height, width);
      const out = new Uint8Array(resized.length);
      for (let k = 0; k < resized.length; k++) out[k] = Math.round(resized[k]!); // convex weights: stays in 0..255
      return out;
    },
    getLabel(i) {
      checkIndex(i, files.length, opts.root);
      return labels[i]!;
    },
  };
}
