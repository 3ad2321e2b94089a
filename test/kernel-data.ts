// Random weight rows and activations for the kernel tests: block bytes with
// sane fp16 scales (no NaN/Inf), from a seeded generator so failures repeat.
import { GgmlType } from '../server/src/engine/kernels';
import { rng } from './helpers/random';

export { rng };

/** IEEE half bits of a normal number sign * 2^(exp-15) * (1 + mant/1024). */
export function halfBits(sign: number, exp: number, mant: number): number {
  return (sign << 15) | (exp << 10) | mant;
}

/** A random fp16 scale of magnitude 2^-7 .. 2^-1 (ranges real models use). */
function randomScale(r: () => number): number {
  return halfBits(r() < 0.5 ? 1 : 0, 8 + Math.floor(r() * 7), Math.floor(r() * 1024));
}

function randomPositiveScale(r: () => number): number {
  return halfBits(0, 8 + Math.floor(r() * 7), Math.floor(r() * 1024));
}

export const BLOCK: Record<number, { elems: number; bytes: number }> = {
  [GgmlType.F32]: { elems: 1, bytes: 4 },
  [GgmlType.F16]: { elems: 1, bytes: 2 },
  [GgmlType.BF16]: { elems: 1, bytes: 2 },
  [GgmlType.Q8_0]: { elems: 32, bytes: 34 },
  [GgmlType.Q4_0]: { elems: 32, bytes: 18 },
  [GgmlType.Q5_0]: { elems: 32, bytes: 22 },
  [GgmlType.Q4_1]: { elems: 32, bytes: 20 },
  [GgmlType.Q5_1]: { elems: 32, bytes: 24 },
  [GgmlType.Q4_K]: { elems: 256, bytes: 144 },
  [GgmlType.Q5_K]: { elems: 256, bytes: 176 },
  [GgmlType.Q6_K]: { elems: 256, bytes: 210 },
};

export function rowBytes(type: number, cols: number): number {
  const b = BLOCK[type];
  return (cols / b.elems) * b.bytes;
}

/** rows weight rows of `type` with random content (every float finite). */
export function randomWeights(type: number, rows: number, cols: number, seed: number): Uint8Array {
  const r = rng(seed);
  const n = rowBytes(type, cols) * rows;
  const out = new Uint8Array(n);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) out[i] = Math.floor(r() * 256);
  const blocks = n / BLOCK[type].bytes;
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < blocks; i++) view.setFloat32(i * 4, r() * 2 - 1, true);
      break;
    case GgmlType.F16: // every exponent but inf/nan, so subnormals are covered too
      for (let i = 0; i < blocks; i++)
        view.setUint16(i * 2, halfBits(r() < 0.5 ? 1 : 0, Math.floor(r() * 16), Math.floor(r() * 1024)), true);
      break;
    case GgmlType.BF16:
      for (let i = 0; i < blocks; i++)
        view.setUint16(i * 2, ((r() < 0.5 ? 1 : 0) << 15) | ((118 + Math.floor(r() * 10)) << 7) | Math.floor(r() * 128), true);
      break;
    case GgmlType.Q8_0:
    case GgmlType.Q4_0:
    case GgmlType.Q5_0:
      for (let i = 0; i < blocks; i++) view.setUint16(i * BLOCK[type].bytes, randomScale(r), true);
      break;
    case GgmlType.Q4_1:
    case GgmlType.Q5_1: // d, m first
      for (let i = 0; i < blocks; i++) {
        view.setUint16(i * BLOCK[type].bytes, randomScale(r), true);
        view.setUint16(i * BLOCK[type].bytes + 2, randomScale(r), true);
      }
      break;
    case GgmlType.Q4_K:
    case GgmlType.Q5_K: // d, dmin first
      for (let i = 0; i < blocks; i++) {
        view.setUint16(i * BLOCK[type].bytes, randomPositiveScale(r), true);
        view.setUint16(i * BLOCK[type].bytes + 2, randomPositiveScale(r), true);
      }
      break;
    case GgmlType.Q6_K:
      for (let i = 0; i < blocks; i++) view.setUint16(i * 210 + 208, randomScale(r), true);
      break;
    default:
      throw new Error(`no generator for type ${type}`);
  }
  return out;
}

/** Activations like a model's: mostly small, a few larger outliers. */
export function randomActivations(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() * 2 - 1) * (r() < 0.02 ? 8 : 1);
  return x;
}
