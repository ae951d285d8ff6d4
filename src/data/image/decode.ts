/**
 * PNG and JPEG decoding with maintained pure-JS libraries (pngjs, jpeg-js): no native build, so
 * it installs the same on every machine. Format is chosen from the file's magic bytes.
 */
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { DataError } from "../errors.ts";

export interface DecodedImage {
  width: number;
  height: number;
  /** Interleaved RGBA, 8 bits per channel. */
  rgba: Uint8Array;
}

export function sniffImageFormat(bytes: Uint8Array): "png" | "jpeg" | null {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) {
    return "png";
  }
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "jpeg";
  return null;
}

export function decodeImage(bytes: Uint8Array, source: string): DecodedImage {
  const format = sniffImageFormat(bytes);
  try {
    if (format === "png") {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { width: png.width, height: png.height, rgba: new Uint8Array(png.data) };
    }
    if (format === "jpeg") {
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 1024 });
      return { width: img.width, height: img.height, rgba: img.data };
    }
  } catch (err) {
    throw new DataError(
      `cannot decode ${format?.toUpperCase()} image (${(err as Error).message}); the file is corrupt`,
      {
        source,
        cause: err,
      },
    );
  }
  throw new DataError("not a PNG or JPEG image (unknown magic bytes); remove it or convert it", { source });
}

/** RGBA → CHW planar with 1 (ITU-R 601 luma, as PIL's "L") or 3 channels; alpha is dropped. */
export function rgbaToChw(img: DecodedImage, channels: 1 | 3): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(channels * n);
  const px = img.rgba;
  if (channels === 3) {
    for (let p = 0; p < n; p++) {
      out[p] = px[4 * p]!;
      out[n + p] = px[4 * p + 1]!;
      out[2 * n + p] = px[4 * p + 2]!;
    }
  } else {
    for (let p = 0; p < n; p++)
      out[p] = (px[4 * p]! * 299 + px[4 * p + 1]! * 587 + px[4 * p + 2]! * 114) / 1000;
  }
  return out;
}
