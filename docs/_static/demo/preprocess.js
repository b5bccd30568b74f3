// lenet5.preprocess.to_mnist for an RGBA picture, ported operation by operation so that the
// browser computes the same uint8 28x28 image as Python (tests/test_demo_browser.py checks it).
//
// Python runs these steps in float32 (torch) and in Pillow's fixed-point C code. Every float32
// operation here is the double result rounded with Math.fround: for + - * / that is exactly
// IEEE float32 arithmetic. Python's round() and torch.round() round half to even, which
// Math.round does not, hence roundHalfEven.

const f = Math.fround;
const BOX = 20; // MNIST fits each digit into a 20x20 box ...
const SIZE = 28; // ... inside a 28x28 image.
/** Pictures with more pixels are shrunk by Python first (`_shrink`); refused here. */
export const MAX_PIXELS = 4096 * 4096;

/** A picture that holds no digit (the message is Python's ImageError's). */
export class ImageError extends Error {
  constructor(message) {
    super(message);
    this.name = "ImageError";
  }
}

/** Python's round(): to the nearest integer, ties to the even one. */
export function roundHalfEven(x) {
  const low = Math.floor(x);
  const rest = x - low; // exact for the magnitudes met here
  if (rest !== 0.5) return rest < 0.5 ? low : low + 1;
  return low % 2 === 0 ? low : low + 1;
}

/** `_alpha_over_background`: greyscale, drawn over the colour the ink contrasts with. */
function alphaOverBackground(rgba, count) {
  const grey = new Float32Array(count);
  const alpha = new Float32Array(count);
  let sum = 0;
  let opaque = 0;
  for (let i = 0; i < count; i++) {
    const p = 4 * i;
    // Pillow's RGB -> L: ITU-R 601-2 luma in 16-bit fixed point, rounded (its L24 macro).
    const l = (rgba[p] * 19595 + rgba[p + 1] * 38470 + rgba[p + 2] * 7471 + 0x8000) >>> 16;
    const a = f(rgba[p + 3] / 255);
    grey[i] = l;
    alpha[i] = a;
    if (a > 0.5) {
      sum += l; // integers: exact in double
      opaque++;
    }
  }
  // torch's float32 mean of the opaque pixels; it can differ from this only when the mean
  // lies within float32 rounding of 128.
  const ink = opaque > 0 ? f(f(sum) / opaque) : 0;
  const background = ink < 128 ? 255 : 0;
  for (let i = 0; i < count; i++) {
    const a = alpha[i];
    grey[i] = f(f(grey[i] * a) + f(background * f(1 - a)));
  }
  return grey;
}

/** torch.median of the border: rows 0 and -1, then columns 0 and -1 (corners twice). */
function borderMedian(grey, width, height) {
  const border = new Float32Array(2 * width + 2 * height);
  let n = 0;
  for (let x = 0; x < width; x++) border[n++] = grey[x];
  for (let x = 0; x < width; x++) border[n++] = grey[(height - 1) * width + x];
  for (let y = 0; y < height; y++) border[n++] = grey[y * width];
  for (let y = 0; y < height; y++) border[n++] = grey[y * width + width - 1];
  border.sort();
  return border[(border.length - 1) >> 1]; // torch returns the lower of the two middles
}

// --- Pillow's Image.resize(size, LANCZOS) of an 'L' image (src/libImaging/Resample.c) ---

function sinc(x) {
  if (x === 0.0) return 1.0;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

function lanczos(x) {
  return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
}

/** `precompute_coeffs` and `normalize_coeffs_8bpc`: per output pixel, its first input
 * pixel, how many it reads, and their weights in fixed point with 22 fraction bits. */
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1.0);
  const support = 3.0 * filterscale;
  const inverse = 1.0 / filterscale;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0); // C's (int) truncates
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(Math.max(xmax, 0));
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      k[x] = lanczos((x + xmin - center + 0.5) * inverse);
      ww += k[x];
    }
    const fixed = new Int32Array(k.length);
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0.0 ? k[x] / ww : k[x];
      fixed[x] = Math.trunc(w < 0 ? -0.5 + w * 4194304 : 0.5 + w * 4194304);
    }
    first[xx] = xmin;
    count[xx] = Math.max(xmax, 0);
    weights.push(fixed);
  }
  return { first, count, weights };
}

/** One pass along rows (`step` 1) or columns (`step` = width) with 32-bit int sums. */
function pass(src, lines, lineStride, step, offset, coeffs, dst, dstLineStride, dstStep) {
  const { first, count, weights } = coeffs;
  for (let line = 0; line < lines; line++) {
    const base = line * lineStride;
    for (let xx = 0; xx < first.length; xx++) {
      const k = weights[xx];
      const start = base + (first[xx] + offset) * step;
      let ss = 1 << 21; // half of the last bit: rounds the fixed-point sum
      for (let x = 0; x < count[xx]; x++) ss = (ss + src[start + x * step] * k[x]) | 0;
      const v = ss >> 22; // clip8
      dst[line * dstLineStride + xx * dstStep] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}

/**
 * Pillow's LANCZOS resize of a uint8 image, both passes rounded to uint8 as Pillow does.
 *
 * Pillow resamples horizontally first, into the rows the vertical pass reads; Pillow 13
 * goes vertically first when the height shrinks, by more than twice as many pixels as
 * the width does (`verticalFirst`, which the docs build measures on the Pillow it runs).
 */
export function resizeLanczos(src, width, height, newWidth, newHeight, verticalFirst) {
  if (width === newWidth && height === newHeight) return Uint8Array.from(src);
  const horizontal = newWidth !== width;
  const vertical = newHeight !== height;
  const vert = coefficients(height, newHeight);
  const tall = newHeight < height && height - newHeight > 2 * (width - newWidth);
  if (horizontal && vertical && verticalFirst && tall) {
    const tmp = new Uint8Array(newHeight * width);
    pass(src, width, 1, width, 0, vert, tmp, 1, width); // each column, top to bottom
    const out = new Uint8Array(newHeight * newWidth);
    pass(tmp, newHeight, width, 1, 0, coefficients(width, newWidth), out, newWidth, 1);
    return out;
  }
  let image = src;
  let rowOffset = 0;
  if (horizontal) {
    // Only the rows the vertical pass reads, from the first one it uses.
    const top = vert.first[0];
    const bottom = vert.first[newHeight - 1] + vert.count[newHeight - 1];
    const rows = vertical ? bottom - top : height;
    const from = vertical ? top : 0;
    const tmp = new Uint8Array(rows * newWidth);
    const hor = coefficients(width, newWidth);
    pass(src.subarray(from * width), rows, width, 1, 0, hor, tmp, newWidth, 1);
    image = tmp;
    rowOffset = -from;
  }
  if (!vertical) return image;
  const out = new Uint8Array(newHeight * newWidth);
  pass(image, newWidth, 1, newWidth, rowOffset, vert, out, 1, newWidth);
  return out;
}

/** Bounds of the pixels above `threshold`: [top, bottom, left, right], inclusive. */
function inkBox(grey, width, height, threshold) {
  let top = height;
  let bottom = -1;
  let left = width;
  let right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (grey[y * width + x] > threshold) {
        if (y < top) top = y;
        bottom = y;
        if (x < left) left = x;
        if (x > right) right = x;
      }
    }
  }
  return [top, bottom, left, right];
}

/** `_digit`: invert to light on dark, full contrast, crop, scale into 20x20, centre. */
function digit(grey, width, height, verticalFirst) {
  let background = borderMedian(grey, width, height);
  if (background > 127) {
    for (let i = 0; i < grey.length; i++) grey[i] = f(255 - grey[i]);
    background = f(255 - background);
  }
  let peak = 0;
  for (let i = 0; i < grey.length; i++) {
    const v = Math.min(Math.max(f(grey[i] - background), 0), 255);
    grey[i] = v;
    if (v > peak) peak = v;
  }
  if (peak < 32) throw new ImageError("the image is blank: no digit stands out from the background");
  const gain = f(255 / peak); // torch turns the Python float into float32 first
  for (let i = 0; i < grey.length; i++) grey[i] = f(grey[i] * gain);
  const [top, bottom, left, right] = inkBox(grey, width, height, 25.5);
  const h = bottom - top + 1;
  const w = right - left + 1;
  const scale = BOX / Math.max(h, w);
  const newH = Math.max(1, roundHalfEven(h * scale));
  const newW = Math.max(1, roundHalfEven(w * scale));
  const crop = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) crop[y * w + x] = roundHalfEven(grey[(top + y) * width + left + x]);
  }
  const small = resizeLanczos(crop, w, h, newW, newH, verticalFirst);
  return place(small, newW, newH);
}

/** Paste the scaled digit into 28x28 with its centre of mass at the centre. */
function place(small, newW, newH) {
  // The sums are integers well below 2**24: exact in torch's float32 as here.
  let total = 0;
  let my = 0;
  let mx = 0;
  for (let y = 0; y < newH; y++) {
    for (let x = 0; x < newW; x++) {
      const v = small[y * newW + x];
      total += v;
      my += v * y;
      mx += v * x;
    }
  }
  if (total === 0) throw new ImageError("the digit vanished when scaled into 20x20 pixels");
  const cy = my / total;
  const cx = mx / total;
  const top = Math.min(Math.max(roundHalfEven(SIZE / 2 - 0.5 - cy), 0), SIZE - newH);
  const left = Math.min(Math.max(roundHalfEven(SIZE / 2 - 0.5 - cx), 0), SIZE - newW);
  const out = new Uint8Array(SIZE * SIZE);
  for (let y = 0; y < newH; y++) {
    out.set(small.subarray(y * newW, (y + 1) * newW), (top + y) * SIZE + left);
  }
  return out;
}

/**
 * The MNIST-like 28x28 image of an RGBA picture: `lenet5.preprocess.to_mnist` of
 * `PIL.Image.frombytes("RGBA", (width, height), rgba)`.
 *
 * @param {Uint8ClampedArray|Uint8Array} rgba - width * height * 4 bytes, not premultiplied.
 * @param {number} width
 * @param {number} height
 * @param {{verticalFirst?: boolean}} [options] - how the Pillow of the docs build resizes.
 * @returns {Uint8Array} 784 bytes, row by row, white digit on black.
 * @throws {ImageError} If the picture is blank; {RangeError} if it is too large.
 */
export function toMnist(rgba, width, height, options = {}) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new TypeError(`width and height must be positive integers, got ${width} x ${height}`);
  }
  if (width * height > MAX_PIXELS) {
    throw new RangeError(
      `the picture has ${width} x ${height} pixels, more than 4096 x 4096: scale it down first`,
    );
  }
  if (!rgba || rgba.length !== width * height * 4) {
    throw new TypeError(`expected ${width * height * 4} RGBA bytes, got ${rgba ? rgba.length : rgba}`);
  }
  const grey = alphaOverBackground(rgba, width * height);
  return digit(grey, width, height, Boolean(options.verticalFirst));
}

/** `lenet5.data.normalize`: `x * (1 / (255 std)) - mean / std`, in float32 as torch does. */
export function normalize(pixels, mean, std) {
  const scale = f(1.0 / (255.0 * std));
  const shift = f(mean / std);
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = f(f(pixels[i] * scale) - shift);
  return out;
}

/** Softmax of the logits, in double (the largest subtracted first, as torch does). */
export function softmax(logits) {
  const top = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - top));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}
