// Typed view of the addon's kernel surface (native/src/bindings/kernel_binding.cpp),
// used by tests and benchmarks. The model itself calls the kernels natively.
import { loadAddon } from './addon';
import type { CpuPathName } from './types';

/** ggml tensor type ids of the types the engine computes with (and of the activation types Q8_1, Q8_K). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q8_1: 9,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  Q8_K: 15,
  BF16: 30,
} as const;

export interface CpuFeatures {
  avx2: boolean;
  fma: boolean;
  f16c: boolean;
  avx512f: boolean;
  avx512bw: boolean;
  avx512vl: boolean;
  avx512dq: boolean;
  avx512vnni: boolean;
  avxVnni: boolean;
  neon: boolean;
  neonDotprod: boolean;
}

export interface GgmlTypeInfo {
  name: string;
  /** elements per block (1 for float types; 0 for ids ggml does not define) */
  blockSize: number;
  /** bytes per block */
  typeSize: number;
  /** the engine has kernels for it */
  computable: boolean;
}

/**
 * A kernel path name: a CpuPathName, or 'avx512-novnni' (the AVX-512 path
 * with VNNI instructions turned off, to test that variant on a VNNI CPU).
 * Unknown or unsupported names throw an Error with code INVALID_ARGUMENT.
 */
export type KernelPathName = CpuPathName | 'avx512-novnni';

export interface KernelsAddon {
  cpuFeatures(): CpuFeatures;
  /** the path the engine picks by default */
  bestPath(): CpuPathName;
  /** every path this CPU can run, 'scalar' first */
  supportedPaths(): CpuPathName[];
  /** physical cores available to this process (SMT siblings once) */
  physicalCores(): number;
  typeInfo(type: number): GgmlTypeInfo;
  /** one row of n elements (bytes = exactly one row) to f32 */
  dequantizeRow(type: number, path: KernelPathName, bytes: Uint8Array, n: number): Float32Array;
  /**
   * y[b * rows + r] = sum_k W[r][k] x[b * cols + k], W given as rows * rowSize bytes of `type`;
   * activations are quantized to Q8_0 / Q8_1 / Q8_K for the quantized types, as ggml does.
   */
  matmul(
    type: number,
    path: KernelPathName,
    weightBytes: Uint8Array,
    rows: number,
    cols: number,
    x: Float32Array,
    batch: number,
    threads: number,
  ): Float32Array;
  /**
   * Best wall time in seconds of one matmul call over `iterations` calls (pool and scratch made once).
   * weightBytes may hold `copies` matrices back to back; calls cycle through them so that, with
   * enough copies, weights stream from memory instead of the last-level cache.
   */
  benchMatmul(
    type: number,
    path: KernelPathName,
    weightBytes: Uint8Array,
    rows: number,
    cols: number,
    x: Float32Array,
    batch: number,
    threads: number,
    iterations: number,
    copies?: number,
  ): number;
  /** matmul in double from the scalar dequantization, activations put through the same 8-bit quantization */
  referenceMatmul(
    type: number,
    weightBytes: Uint8Array,
    rows: number,
    cols: number,
    x: Float32Array,
    batch: number,
  ): Float64Array;
  /** ggml block_q8_0 bytes (34 per 32 values) as the path's matmul quantizes activations */
  quantizeRowQ8_0(path: KernelPathName, x: Float32Array): Uint8Array;
  /** ggml block_q8_1 bytes (36 per 32 values: fp16 d, fp16 s = d * sum, 32 int8), as for Q4_1/Q5_1 weights */
  quantizeRowQ8_1(path: KernelPathName, x: Float32Array): Uint8Array;
  /** ggml block_q8_K bytes (292 per 256 values: f32 d, 256 int8, 16 int16 bsums) */
  quantizeRowQ8K(path: KernelPathName, x: Float32Array): Uint8Array;
  /** f32 -> IEEE half bits with the path's conversion (round to nearest even) */
  fp32ToFp16(path: KernelPathName, x: Float32Array): Uint16Array;
  /**
   * One attention task over a F16 cache: q [span][hd] f32, k and v [nPos][hd]
   * half bits. Returns the unnormalised half value sums widened to f32
   * [span][hd], then the running maxima [span] and weight sums [span].
   * blocked=false forces the per-position loop.
   */
  attendF16(
    path: KernelPathName,
    blocked: boolean,
    hd: number,
    span: number,
    nPos: number,
    q: Float32Array,
    k: Uint16Array,
    v: Uint16Array,
    scale: number,
  ): Float32Array;
  /** exp of the floats with bits firstBits + i*step (i < count) vs std::exp: [mismatches, first mismatching bits or -1] */
  expSweep(path: KernelPathName, firstBits: number, step: number, count: number): [number, number];
  /** streaming-read bandwidth in GB/s over a buffer of `bytes` with `threads` threads */
  readBandwidth(bytes: number, threads: number): number;
  /**
   * Runs parallel_for(n) `repeats` times for each n in taskCounts on one pool of
   * `threads` threads; returns per n the count of (task, run) pairs that did not
   * run exactly once, then the highest thread index seen.
   */
  threadPoolRun(threads: number, taskCounts: Int32Array, repeats: number, pauseMicros: number): Int32Array;
}

export function kernels(): KernelsAddon {
  return loadAddon().kernels as KernelsAddon;
}
