// A float64 reference of the llama / qwen2 forward pass, written for reading,
// not speed: embedding, RMSNorm, Q/K/V (+ biases), RoPE (normal or neox, with
// frequency factors and linear scaling), causal grouped-query attention,
// SwiGLU, final norm, LM head. Weights come dequantized from the engine (its
// scalar dequantizer); activations are rounded the way the engine's matmul
// rounds them before a quantized weight (8-bit blocks: Q8_0 for q4_0/q5_0/q8_0,
// Q8_1 with its block sums for q4_1/q5_1, Q8_K for q4_K/q5_K/q6_K), so the
// comparison isolates the forward pass itself.
import { f16ToF32, f32ToF16 } from '../../server/src/engine/gguf-random';

export interface RefConfig {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nFf: number;
  nVocab: number;
  rmsEps: number;
  ropeBase: number;
  ropeDim: number;
  ropeType: 'normal' | 'neox';
  ropeFreqScale: number;
  ropeFreqs?: Float32Array; // [ropeDim / 2] divisors
}

/** A matrix [rows][cols] (row-major, as ggml's ne[1] x ne[0]) and its GGUF type name. */
export interface RefMatrix {
  data: Float32Array;
  rows: number;
  cols: number;
  type: string;
  /** q4_1 / q5_1: each block's m (rows * cols / 32, row-major), for the Q8_1 block-sum term */
  blockMins?: Float64Array;
}

export interface RefLayer {
  attnNorm: Float32Array;
  wq: RefMatrix;
  wk: RefMatrix;
  wv: RefMatrix;
  wo: RefMatrix;
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  ffnNorm: Float32Array;
  wGate: RefMatrix;
  wUp: RefMatrix;
  wDown: RefMatrix;
}

export interface RefWeights {
  tokenEmbd: RefMatrix;
  layers: RefLayer[];
  outputNorm: Float32Array;
  output: RefMatrix;
}

// ---- activation rounding (what the engine's matmul does to its input) ----

const fround = Math.fround;

/** Round half to even, as ggml's nearest_int. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x as the Q8_0 blocks of 32 it is quantized to (scale stored as f16), dequantized. */
export function roundQ8_0(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(fround(x[b + j])));
    const d = fround(amax / 127);
    const id = d !== 0 ? fround(1 / d) : 0;
    const dh = f16ToF32(f32ToF16(d));
    for (let j = 0; j < 32; j++) out[b + j] = dh * roundEven(fround(fround(x[b + j]) * id));
  }
  return out;
}

/** x as the Q8_K blocks of 256 it is quantized to (f32 scale; the largest magnitude maps to -127), dequantized. */
export function roundQ8_K(x: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < x.length; b += 256) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 256; j++) {
      const v = fround(x[b + j]);
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    if (amax === 0) continue;
    const iscale = fround(-127 / max);
    const d = fround(1 / iscale);
    for (let j = 0; j < 256; j++) out[b + j] = d * Math.min(127, roundEven(fround(iscale * fround(x[b + j]))));
  }
  return out;
}

/**
 * x as the Q8_1 blocks of 32 it is quantized to (for q4_1/q5_1 weights), dequantized, and per
 * block s - sum(values): Q8_1 carries s = d * sum(q) as an f16, which the kernels use for the
 * weights' "+ m" term in place of the exact sum (values × 127 / amax, as ggml's x86 quantizer).
 */
export function roundQ8_1(x: ArrayLike<number>): { values: Float64Array; sMinusSum: Float64Array } {
  const values = new Float64Array(x.length);
  const sMinusSum = new Float64Array(x.length / 32);
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(fround(x[b + j])));
    const d = fround(amax / 127);
    const id = amax !== 0 ? fround(127 / amax) : 0;
    const dh = f16ToF32(f32ToF16(d));
    let sum = 0;
    for (let j = 0; j < 32; j++) {
      const q = roundEven(fround(fround(x[b + j]) * id));
      values[b + j] = dh * q;
      sum += q;
    }
    sMinusSum[b / 32] = f16ToF32(f32ToF16(fround(d * sum))) - dh * sum;
  }
  return { values, sMinusSum };
}

function activationFor(type: string, x: Float64Array): ArrayLike<number> {
  if (type === 'q8_0' || type === 'q4_0' || type === 'q5_0') return roundQ8_0(x);
  if (type === 'q4_K' || type === 'q5_K' || type === 'q6_K') return roundQ8_K(x);
  return x;
}

// ---- the forward pass ----

function matvec(w: RefMatrix, x: Float64Array): Float64Array {
  if (w.blockMins) return matvecQ8_1(w, w.blockMins, x);
  const a = activationFor(w.type, x);
  const y = new Float64Array(w.rows);
  for (let r = 0; r < w.rows; r++) {
    let s = 0;
    const off = r * w.cols;
    for (let k = 0; k < w.cols; k++) s += w.data[off + k] * a[k];
    y[r] = s;
  }
  return y;
}

/** q4_1 / q5_1 times Q8_1 activations: sum w * a, plus m * (s - sum) per block. */
function matvecQ8_1(w: RefMatrix, mins: Float64Array, x: Float64Array): Float64Array {
  const { values: a, sMinusSum } = roundQ8_1(x);
  const nb = w.cols / 32;
  const y = new Float64Array(w.rows);
  for (let r = 0; r < w.rows; r++) {
    let s = 0;
    const off = r * w.cols;
    for (let k = 0; k < w.cols; k++) s += w.data[off + k] * a[k];
    for (let b = 0; b < nb; b++) s += mins[r * nb + b] * sMinusSum[b];
    y[r] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * w[i]);
}

function addBias(y: Float64Array, b?: Float32Array): void {
  if (b) for (let i = 0; i < y.length; i++) y[i] += b[i];
}

function rope(v: Float64Array, nHeads: number, pos: number, c: RefConfig): void {
  const half = c.ropeDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * c.headDim;
    for (let j = 0; j < half; j++) {
      let theta = pos * Math.pow(c.ropeBase, (-2 * j) / c.ropeDim);
      if (c.ropeFreqs) theta /= c.ropeFreqs[j];
      theta *= c.ropeFreqScale;
      const [ia, ib] = c.ropeType === 'normal' ? [base + 2 * j, base + 2 * j + 1] : [base + j, base + j + half];
      const x0 = v[ia];
      const x1 = v[ib];
      v[ia] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
      v[ib] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
    }
  }
}

const silu = (x: number): number => x / (1 + Math.exp(-x));

const toHalf = (x: number): number => f16ToF32(f32ToHalfBits(x));
function f32ToHalfBits(x: number): number {
  return f32ToF16(Math.fround(x));
}

/**
 * One head's attention as llama.cpp's CPU flash attention computes it over an
 * F16 cache: keys, values and the query rounded to half, one pass with an
 * online softmax (float), the weighted value sum kept in half precision.
 */
function attendF16(q: Float64Array, ks: Float64Array[], vs: Float64Array[], off: number, n: number): Float64Array {
  const qh = Array.from({ length: n }, (_, i) => toHalf(q[i]));
  const acc = new Float64Array(n); // values are halves
  let S = 0;
  let M = -Infinity;
  const scale = Math.fround(1 / Math.sqrt(n));
  ks.forEach((k, p) => {
    let dot = 0;
    for (let i = 0; i < n; i++) dot += qh[i] * toHalf(k[off + i]);
    const s = Math.fround(Math.fround(dot) * scale);
    let ms = 1;
    let vsc = 1;
    if (s > M) {
      const mOld = M;
      M = s;
      ms = Math.fround(Math.exp(mOld - M));
      for (let i = 0; i < n; i++) acc[i] = toHalf(acc[i] * ms);
    } else {
      vsc = Math.fround(Math.exp(s - M));
    }
    for (let i = 0; i < n; i++) acc[i] = toHalf(acc[i] + toHalf(vs[p][off + i]) * vsc);
    S = Math.fround(Math.fround(S * ms) + vsc);
  });
  return acc.map((a) => a / S);
}

export class ReferenceModel {
  constructor(
    readonly config: RefConfig,
    readonly weights: RefWeights,
  ) {}

  /**
   * Logits at every position of one sequence evaluated from position 0.
   * kv 'f32': exact attention; 'f16': the F16-cache flash attention above.
   */
  forward(tokens: number[], kv: 'f32' | 'f16' = 'f32'): Float64Array[] {
    const c = this.config;
    const w = this.weights;
    const group = c.nHead / c.nHeadKv;
    const keys: Float64Array[][] = w.layers.map(() => []);
    const values: Float64Array[][] = w.layers.map(() => []);
    const logits: Float64Array[] = [];
    tokens.forEach((token, pos) => {
      let x = Float64Array.from(w.tokenEmbd.data.subarray(token * c.nEmbd, (token + 1) * c.nEmbd));
      w.layers.forEach((L, l) => {
        // attention
        const xn = rmsNorm(x, L.attnNorm, c.rmsEps);
        const q = matvec(L.wq, xn);
        const k = matvec(L.wk, xn);
        const v = matvec(L.wv, xn);
        addBias(q, L.bq);
        addBias(k, L.bk);
        addBias(v, L.bv);
        rope(q, c.nHead, pos, c);
        rope(k, c.nHeadKv, pos, c);
        keys[l].push(k);
        values[l].push(v);
        const att = new Float64Array(c.nHead * c.headDim);
        for (let h = 0; h < c.nHead; h++) {
          const g = Math.floor(h / group);
          if (kv === 'f16') {
            const qh = q.subarray(h * c.headDim, (h + 1) * c.headDim);
            att.set(attendF16(qh, keys[l], values[l], g * c.headDim, c.headDim), h * c.headDim);
            continue;
          }
          const scores = keys[l].map((kp) => {
            let s = 0;
            for (let i = 0; i < c.headDim; i++) s += q[h * c.headDim + i] * kp[g * c.headDim + i];
            return s / Math.sqrt(c.headDim);
          });
          const m = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - m));
          const z = e.reduce((a, b) => a + b, 0);
          values[l].forEach((vp, p) => {
            for (let i = 0; i < c.headDim; i++) att[h * c.headDim + i] += (e[p] / z) * vp[g * c.headDim + i];
          });
        }
        const o = matvec(L.wo, att);
        x = x.map((xi, i) => xi + o[i]);
        // feed-forward
        const xf = rmsNorm(x, L.ffnNorm, c.rmsEps);
        const gate = matvec(L.wGate, xf);
        const up = matvec(L.wUp, xf);
        const act = gate.map((gi, i) => silu(gi) * up[i]);
        const down = matvec(L.wDown, act);
        x = x.map((xi, i) => xi + down[i]);
      });
      logits.push(matvec(w.output, rmsNorm(x, w.outputNorm, c.rmsEps)));
    });
    return logits;
  }
}
