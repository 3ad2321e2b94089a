// Random tensor data for test and benchmark models, deterministic from a seed.
// Float types hold mean + std * N(0, 1) samples; quantized types hold random but
// valid blocks whose dequantized values have mean ~0 and standard deviation ~std
// (random quants drawn from a discretised normal, sane fp16 scales) — no real
// quantizer is involved, which is all a random-weight model needs.
import { GGML_TYPES, GgmlTypeName, TensorSource, tensorBytes } from './gguf-writer';

/** mulberry32: small, fast, good enough for weights; one 32-bit state. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

/** A per-tensor seed, so each tensor's data depends only on (seed, name). */
export function tensorSeed(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0; // FNV-1a over the name, started from the seed
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

// ---- float conversions ----------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of x, round to nearest even (as ggml's FP32_TO_FP16). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000; // subnormal half: shift the implicit bit in
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // may carry into the exponent: still right
  return sign | h;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of x, round to nearest even. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff; // quiet nan
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---- standard normal quantiles ---------------------------------------------

/** Inverse normal CDF (Acklam's rational approximation, |relative error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

// 65536 equiprobable normal quantiles: one table lookup per 16 random bits gives a
// normal sample (discretised finely enough for random weights, and far faster than Box-Muller).
let normal16: Float64Array | undefined;
function normalTable(): Float64Array {
  if (!normal16) {
    normal16 = new Float64Array(65536);
    for (let i = 0; i < 65536; i++) normal16[i] = normalQuantile((i + 0.5) / 65536);
  }
  return normal16;
}

/** 256-entry table of integer quants: clamp(round(center + z * spread), lo, hi) over byte-quantiles z. */
function quantTable(center: number, spread: number, lo: number, hi: number): { q: Int32Array; mean: number; std: number } {
  const q = new Int32Array(256);
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < 256; i++) {
    const z = normalQuantile((i + 0.5) / 256);
    q[i] = Math.min(hi, Math.max(lo, Math.round(center + z * spread)));
    s += q[i];
    s2 += q[i] * q[i];
  }
  const mean = s / 256;
  return { q, mean, std: Math.sqrt(s2 / 256 - mean * mean) };
}

// Quant distributions per block type (z spans about +-2.9 over 256 byte-quantiles).
const Q8 = quantTable(0, 127 / 2.9, -127, 127); // int8 quant, value = d * q
const Q4 = quantTable(8, 7.5 / 2.9, 0, 15); // 4-bit quant, value = d * (q - 8) (Q4_0), d*q + m (Q4_1) or d*sc*q - dmin*m (Q4_K)
const Q5 = quantTable(16, 15.5 / 2.9, 0, 31); // 5-bit quant, value = d * (q - 16) (Q5_0), d*q + m (Q5_1) or d*sc*q - dmin*m (Q5_K)
const Q6 = quantTable(32, 31.5 / 2.9, 0, 63); // 6-bit quant, value = d * sc * (q - 32)

// ---- generators -------------------------------------------------------------

export interface RandomTensorOptions {
  seed: number; // per-tensor seed (see tensorSeed)
  std: number;
  mean?: number; // float types only (norm weights: mean 1)
}

const CHUNK_BYTES = 1 << 22;

/** A streaming source of random data for a tensor of `type` and `dims`. */
export function randomTensorSource(type: GgmlTypeName, dims: readonly number[], opts: RandomTensorOptions): TensorSource {
  const nbytes = tensorBytes(type, dims);
  const mean = opts.mean ?? 0;
  if (mean !== 0 && GGML_TYPES[type].blockSize !== 1) throw new Error(`random ${type} data has mean 0 (asked ${mean})`);
  const { typeSize } = GGML_TYPES[type];
  const fill = BLOCK_FILLERS[type];
  return (emit) => {
    const rng = new Rng(opts.seed);
    const ctx = { rng, std: opts.std, mean };
    const blocksPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / typeSize));
    const buf = new Uint8Array(blocksPerChunk * typeSize);
    const view = new DataView(buf.buffer);
    let left = nbytes / typeSize;
    while (left > 0) {
      const n = Math.min(left, blocksPerChunk);
      fill(buf, view, n, ctx);
      emit(buf.subarray(0, n * typeSize));
      left -= n;
    }
  };
}

interface FillContext {
  rng: Rng;
  std: number;
  mean: number;
}
type BlockFiller = (buf: Uint8Array, view: DataView, blocks: number, ctx: FillContext) => void;

const BLOCK_FILLERS: Record<GgmlTypeName, BlockFiller> = {
  f32(_buf, view, n, { rng, std, mean }) {
    const t = normalTable();
    for (let i = 0; i < n; i += 2) {
      const r = rng.u32();
      view.setFloat32(i * 4, mean + std * t[r & 0xffff], true);
      if (i + 1 < n) view.setFloat32(i * 4 + 4, mean + std * t[r >>> 16], true);
    }
  },
  f16(_buf, view, n, ctx) {
    const table = halfTable(ctx, f32ToF16);
    for (let i = 0; i < n; i += 2) {
      const r = ctx.rng.u32();
      view.setUint16(i * 2, table[r & 0xffff], true);
      if (i + 1 < n) view.setUint16(i * 2 + 2, table[r >>> 16], true);
    }
  },
  bf16(_buf, view, n, ctx) {
    const table = halfTable(ctx, f32ToBf16);
    for (let i = 0; i < n; i += 2) {
      const r = ctx.rng.u32();
      view.setUint16(i * 2, table[r & 0xffff], true);
      if (i + 1 < n) view.setUint16(i * 2 + 2, table[r >>> 16], true);
    }
  },
  // block_q8_0 { half d; int8 qs[32]; }
  q8_0(buf, view, n, { rng, std }) {
    const d = f32ToF16(std / Q8.std);
    for (let b = 0, o = 0; b < n; b++, o += 34) {
      view.setUint16(o, d, true);
      for (let i = 0; i < 32; i += 4) {
        const r = rng.u32();
        buf[o + 2 + i] = Q8.q[r & 0xff];
        buf[o + 3 + i] = Q8.q[(r >>> 8) & 0xff];
        buf[o + 4 + i] = Q8.q[(r >>> 16) & 0xff];
        buf[o + 5 + i] = Q8.q[r >>> 24];
      }
    }
  },
  // block_q4_0 { half d; uint8 qs[16]; } value = d * (nibble - 8)
  q4_0(buf, view, n, { rng, std }) {
    const d = f32ToF16(std / Math.sqrt(Q4.std ** 2 + (Q4.mean - 8) ** 2));
    for (let b = 0, o = 0; b < n; b++, o += 18) {
      view.setUint16(o, d, true);
      for (let i = 0; i < 16; i += 2) {
        const r = rng.u32();
        buf[o + 2 + i] = Q4.q[r & 0xff] | (Q4.q[(r >>> 8) & 0xff] << 4);
        buf[o + 3 + i] = Q4.q[(r >>> 16) & 0xff] | (Q4.q[r >>> 24] << 4);
      }
    }
  },
  // block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; } value = d * (q - 16); the low 4 bits
  // as in Q4_0 (element j low nibble, j + 16 high nibble of byte j), bit 4 of element e is bit e of qh
  q5_0(buf, view, n, { rng, std }) {
    const d = f32ToF16(std / Math.sqrt(Q5.std ** 2 + (Q5.mean - 16) ** 2));
    const q = new Int32Array(32);
    for (let b = 0, o = 0; b < n; b++, o += 22) {
      view.setUint16(o, d, true);
      fillQuants(rng, Q5.q, q);
      view.setUint32(o + 2, highBits(q), true);
      for (let j = 0; j < 16; j++) buf[o + 6 + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    }
  },
  // block_q4_1 { half d, m; uint8 qs[16]; } value = d * q + m (nibbles as Q4_0); m = -d * mean(q)
  q4_1(buf, view, n, { rng, std }) {
    const dF = std / Q4.std;
    const d = f32ToF16(dF);
    const m = f32ToF16(-dF * Q4.mean);
    for (let b = 0, o = 0; b < n; b++, o += 20) {
      view.setUint16(o, d, true);
      view.setUint16(o + 2, m, true);
      for (let i = 0; i < 16; i += 2) {
        const r = rng.u32();
        buf[o + 4 + i] = Q4.q[r & 0xff] | (Q4.q[(r >>> 8) & 0xff] << 4);
        buf[o + 5 + i] = Q4.q[(r >>> 16) & 0xff] | (Q4.q[r >>> 24] << 4);
      }
    }
  },
  // block_q5_1 { half d, m; uint8 qh[4]; uint8 qs[16]; } value = d * q + m (bits as Q5_0); m = -d * mean(q)
  q5_1(buf, view, n, { rng, std }) {
    const dF = std / Q5.std;
    const d = f32ToF16(dF);
    const m = f32ToF16(-dF * Q5.mean);
    const q = new Int32Array(32);
    for (let b = 0, o = 0; b < n; b++, o += 24) {
      view.setUint16(o, d, true);
      view.setUint16(o + 2, m, true);
      fillQuants(rng, Q5.q, q);
      view.setUint32(o + 4, highBits(q), true);
      for (let j = 0; j < 16; j++) buf[o + 8 + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    }
  },
  // block_q4_K { half d, dmin; uint8 scales[12]; uint8 qs[128]; }
  // value = d * sc_j * q - dmin * m_j per 32-value sub-block j. With m_j = sc_j and
  // dmin = d * mean(q) this is d * sc_j * (q - mean(q)): centred on 0.
  q4_K(buf, view, n, { rng, std }) {
    const scRms = Math.sqrt(meanSquare(32, 63));
    const dF = std / (Q4.std * scRms);
    const d = f32ToF16(dF);
    const dmin = f32ToF16(dF * Q4.mean);
    const sc = new Int32Array(8);
    for (let b = 0, o = 0; b < n; b++, o += 144) {
      view.setUint16(o, d, true);
      view.setUint16(o + 2, dmin, true);
      randomKScales(rng, sc, buf, o + 4);
      for (let i = 0; i < 128; i += 2) {
        const r = rng.u32();
        buf[o + 16 + i] = Q4.q[r & 0xff] | (Q4.q[(r >>> 8) & 0xff] << 4);
        buf[o + 17 + i] = Q4.q[(r >>> 16) & 0xff] | (Q4.q[r >>> 24] << 4);
      }
    }
  },
  // block_q5_K { half d, dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }: Q4_K's
  // layout plus bit 4 of element l of sub-block j in bit j of qh[l]; centred as Q4_K.
  q5_K(buf, view, n, { rng, std }) {
    const scRms = Math.sqrt(meanSquare(32, 63));
    const dF = std / (Q5.std * scRms);
    const d = f32ToF16(dF);
    const dmin = f32ToF16(dF * Q5.mean);
    const sc = new Int32Array(8);
    const q = new Int32Array(256);
    for (let b = 0, o = 0; b < n; b++, o += 176) {
      view.setUint16(o, d, true);
      view.setUint16(o + 2, dmin, true);
      randomKScales(rng, sc, buf, o + 4);
      fillQuants(rng, Q5.q, q);
      for (let l = 0; l < 32; l++) {
        let h = 0;
        for (let j = 0; j < 8; j++) h |= ((q[32 * j + l] >> 4) & 1) << j;
        buf[o + 16 + l] = h;
      }
      for (let g = 0; g < 4; g++)
        for (let l = 0; l < 32; l++) buf[o + 48 + 32 * g + l] = (q[64 * g + l] & 15) | ((q[64 * g + 32 + l] & 15) << 4);
    }
  },
  // block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }
  // value = d * scales[i/16] * (q - 32), q = low 4 bits from ql | high 2 bits from qh.
  q6_K(buf, view, n, { rng, std }) {
    const scRms = Math.sqrt(meanSquare(16, 63));
    const d = f32ToF16(std / (Math.sqrt(Q6.std ** 2 + (Q6.mean - 32) ** 2) * scRms));
    for (let b = 0, o = 0; b < n; b++, o += 210) {
      for (let half = 0; half < 2; half++) {
        const ql = o + 64 * half;
        const qh = o + 128 + 32 * half;
        for (let l = 0; l < 32; l++) {
          const r = rng.u32();
          const q1 = Q6.q[r & 0xff];
          const q2 = Q6.q[(r >>> 8) & 0xff];
          const q3 = Q6.q[(r >>> 16) & 0xff];
          const q4 = Q6.q[r >>> 24];
          buf[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
          buf[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
          buf[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
      }
      for (let i = 0; i < 16; i += 4) {
        const r = rng.u32();
        for (let k = 0; k < 4; k++) buf[o + 192 + i + k] = 16 + (((r >>> (8 * k)) & 0xff) % 48);
      }
      view.setUint16(o + 208, d, true);
    }
  },
};

/**
 * Random K-quant sub-block scales sc[j] in 32..63 with mins m_j = sc_j, packed into the
 * 12 bytes at buf[at] as get_scale_min_k4 reads them (Q4_K, Q5_K).
 */
function randomKScales(rng: Rng, sc: Int32Array, buf: Uint8Array, at: number): void {
  const r0 = rng.u32();
  const r1 = rng.u32();
  for (let j = 0; j < 8; j++) sc[j] = 32 + (((j < 4 ? r0 : r1) >>> ((j & 3) * 8)) & 31);
  for (let j = 0; j < 4; j++) {
    buf[at + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    buf[at + j + 4] = sc[j] | ((sc[j + 4] >> 4) << 6);
    buf[at + j + 8] = (sc[j + 4] & 0xf) | ((sc[j + 4] & 0xf) << 4);
  }
}

/** q[i] = table[random byte] for every i (q.length a multiple of 4). */
function fillQuants(rng: Rng, table: Int32Array, q: Int32Array): void {
  for (let i = 0; i < q.length; i += 4) {
    const r = rng.u32();
    q[i] = table[r & 0xff];
    q[i + 1] = table[(r >>> 8) & 0xff];
    q[i + 2] = table[(r >>> 16) & 0xff];
    q[i + 3] = table[r >>> 24];
  }
}

/** Bit 4 of q[e] as bit e of a uint32 (e < 32): a Q5_0 / Q5_1 block's qh. */
function highBits(q: Int32Array): number {
  let h = 0;
  for (let e = 0; e < 32; e++) h |= ((q[e] >> 4) & 1) << e;
  return h >>> 0;
}

/** Mean of x^2 for x uniform over the integers lo..hi. */
function meanSquare(lo: number, hi: number): number {
  let s = 0;
  for (let x = lo; x <= hi; x++) s += x * x;
  return s / (hi - lo + 1);
}

// 16-bit float tables for (std, mean): one conversion per table entry, not per value.
const halfTables = new Map<string, Uint16Array>();
function halfTable({ std, mean }: FillContext, convert: (x: number) => number): Uint16Array {
  const key = `${convert.name}:${std}:${mean}`;
  let t = halfTables.get(key);
  if (!t) {
    const z = normalTable();
    t = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) t[i] = convert(mean + std * z[i]);
    if (halfTables.size > 64) halfTables.clear();
    halfTables.set(key, t);
  }
  return t;
}
