/**
 * The image type augmentations work on: CHW float32 on the 0..1 scale (so ops written against
 * PIL's 8-bit semantics — solarize at 128, posterize bits — map directly), before normalization.
 */
export interface Image {
  data: Float32Array;
  channels: number;
  height: number;
  width: number;
}

/** Copies a dataset record into an Image; uint8 records are scaled by 1/255. */
export function toImage(
  src: Uint8Array | Float32Array,
  channels: number,
  height: number,
  width: number,
): Image {
  if (src.length !== channels * height * width) {
    throw new Error(
      `image has ${src.length} values, expected channels×height×width = ${channels}×${height}×${width}; ` +
        `the dataset's getImage and its declared shape disagree`,
    );
  }
  const data = new Float32Array(src.length);
  if (src instanceof Uint8Array) {
    for (let i = 0; i < src.length; i++) data[i] = src[i]! / 255;
  } else {
    data.set(src);
  }
  return { data, channels, height, width };
}

export function emptyLike(img: Image, height = img.height, width = img.width): Image {
  return { data: new Float32Array(img.channels * height * width), channels: img.channels, height, width };
}

export function clamp01(x: number): number {
  return x < 0 ? 0 : Math.min(x, 1);
}

/** Round to the 8-bit grid (what PIL's uint8 ops see), as an integer 0..255. */
export function to8(x: number): number {
  const v = Math.round(x * 255);
  return v < 0 ? 0 : Math.min(v, 255);
}

/** ITU-R 601 luma of pixel p (PIL's "L" conversion); single-channel images are their own luma. */
export function luma(img: Image, p: number): number {
  if (img.channels < 3) return img.data[p]!;
  const plane = img.height * img.width;
  return 0.299 * img.data[p]! + 0.587 * img.data[plane + p]! + 0.114 * img.data[2 * plane + p]!;
}
