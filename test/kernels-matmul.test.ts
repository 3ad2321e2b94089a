// Every weight type on every path the CPU has: matmul against the double
// reference (scalar dequantization, activations through the same 8-bit
// quantization), over odd and even shapes, batch sizes and thread counts.
import { GgmlType, kernels } from '../server/src/engine/kernels';
import { BLOCK, randomActivations, randomWeights } from './kernel-data';

const k = kernels();
const paths = [...k.supportedPaths(), ...(k.cpuFeatures().avx512vnni ? ['avx512-novnni' as const] : [])];

const types = [
  ['f32', GgmlType.F32],
  ['f16', GgmlType.F16],
  ['bf16', GgmlType.BF16],
  ['q8_0', GgmlType.Q8_0],
  ['q4_0', GgmlType.Q4_0],
  ['q5_0', GgmlType.Q5_0],
  ['q4_1', GgmlType.Q4_1],
  ['q5_1', GgmlType.Q5_1],
  ['q4_K', GgmlType.Q4_K],
  ['q5_K', GgmlType.Q5_K],
  ['q6_K', GgmlType.Q6_K],
] as const;

const shapes: Array<[rows: number, batch: number, threads: number]> = [
  [1, 1, 1],
  [3, 2, 2],
  [17, 5, 3],
  [129, 17, 2],
  [129, 1, 2],
  [33, 4, 1],
];

function colsFor(type: number): number[] {
  const bs = BLOCK[type].elems;
  if (bs === 256) return [256, 512, 768, 2304]; // odd and even super-block counts
  // 160 and 2336 leave 1 block after whole groups of 4 (the AVX-512 kernels' tail)
  if (bs === 32) return [32, 96, 160, 256, 768, 2304, 2336];
  return [1, 37, 96, 256, 768, 2304]; // float types: any length, including SIMD tails
}

/** Largest |y - ref| relative to the largest |ref| of the output. */
function relError(y: Float32Array, ref: Float64Array): number {
  let maxRef = 0,
    maxErr = 0;
  for (let i = 0; i < ref.length; i++) {
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
    maxErr = Math.max(maxErr, Math.abs(y[i] - ref[i]));
  }
  return maxRef === 0 ? maxErr : maxErr / maxRef;
}

describe.each(types)('%s matmul', (_name, type) => {
  test(`matches the double reference on every path (${paths.join(', ')})`, () => {
    const worst: Record<string, number> = {};
    for (const cols of colsFor(type)) {
      for (const [rows, batch, threads] of shapes) {
        const seed = cols * 1000 + rows * 10 + batch;
        const w = randomWeights(type, rows, cols, seed);
        const x = randomActivations(batch * cols, seed + 1);
        const ref = k.referenceMatmul(type, w, rows, cols, x, batch);
        for (const path of paths) {
          const y = k.matmul(type, path, w, rows, cols, x, batch, threads);
          expect(y.length).toBe(rows * batch);
          const err = relError(y, ref);
          if (!(err <= 1e-4)) throw new Error(`${path} cols=${cols} rows=${rows} batch=${batch}: relative error ${err}`);
          worst[path] = Math.max(worst[path] ?? 0, err);
        }
      }
    }
    for (const path of paths) expect(worst[path]).toBeLessThanOrEqual(1e-4);
  });
});

test('a batch of identical rows gives identical outputs (rows of Y are independent)', () => {
  for (const path of paths) {
    for (const [, type] of types) {
      const cols = 512;
      const w = randomWeights(type, 40, cols, 5);
      const row = randomActivations(cols, 6);
      const x = new Float32Array(cols * 3);
      for (let b = 0; b < 3; b++) x.set(row, b * cols);
      const y = k.matmul(type, path, w, 40, cols, x, 3, 2);
      expect(Array.from(y.subarray(40, 80))).toEqual(Array.from(y.subarray(0, 40)));
      expect(Array.from(y.subarray(80, 120))).toEqual(Array.from(y.subarray(0, 40)));
    }
  }
});

// The quantized types follow llama.cpp's x86 summation order exactly on every
// SIMD path (docs/llama-cpp-parity.md; Q4_K aside), so the paths agree bit for bit.
const sameBits = ['q8_0', 'q4_0', 'q5_0', 'q4_1', 'q5_1', 'q5_K', 'q6_K'];
test(`${sameBits.join(', ')} give the same bits on every SIMD path`, () => {
  const simd = paths.filter((p) => p !== 'scalar' && p !== 'neon');
  for (const [, type] of types.filter(([name]) => sameBits.includes(name))) {
    // 2336 = 73 blocks of 32: whole groups of 4 and a tail
    for (const [cols, rows, batch] of [
      [2048, 67, 1],
      [BLOCK[type].elems === 256 ? 2304 : 2336, 9, 5],
    ]) {
      const w = randomWeights(type, rows, cols, cols + rows);
      const x = randomActivations(cols * batch, batch);
      const first = k.matmul(type, simd[0], w, rows, cols, x, batch, 2);
      for (const path of simd.slice(1)) expect(Array.from(k.matmul(type, path, w, rows, cols, x, batch, 3))).toEqual(Array.from(first));
    }
  }
});
