// The blocked GEMM path (batches of 5+ activation rows on the AVX-512 path, 16+ on AVX2)
// sums in the row kernels' order, so each output equals, bit for bit, what
// the same path gives for that activation row alone (the batch-1 GEMV) — and
// (q4_K aside) what the AVX2 path gives. Shapes cover partial panels
// (rows not a multiple of 16), partial column tiles (batch not a multiple of
// 8), row lengths that are not a multiple of 128, and more threads than panels.
import { GgmlType, kernels } from '../server/src/engine/kernels';
import { BLOCK, randomActivations, randomWeights } from './kernel-data';

const k = kernels();
const simd = [...k.supportedPaths(), ...(k.cpuFeatures().avx512vnni ? ['avx512-novnni' as const] : [])].filter(
  (p) => p !== 'scalar' && p !== 'neon',
);

const types = [
  ['q4_0', GgmlType.Q4_0],
  ['q8_0', GgmlType.Q8_0],
  ['q5_0', GgmlType.Q5_0],
  ['q4_1', GgmlType.Q4_1],
  ['q5_1', GgmlType.Q5_1],
  ['q4_K', GgmlType.Q4_K],
  ['q5_K', GgmlType.Q5_K],
  ['q6_K', GgmlType.Q6_K],
] as const;

// [rows, cols in blocks, batch, threads]
const shapes: Array<[number, number, number, number]> = [
  [16, 1, 5, 1], // the smallest batch that takes the AVX-512 GEMM
  [33, 5, 6, 2],
  [16, 1, 8, 1],
  [17, 3, 9, 2],
  [33, 5, 16, 3],
  [129, 18, 17, 2],
  [40, 73, 33, 2], // 33 x 2336 values: the quantization is split over the pool too
  [7, 2, 64, 4],
];

function firstDifference(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

describe.each(types)('%s batched matmul', (_name, type) => {
  test(`each output row equals the row alone, bit for bit (${simd.join(', ')})`, () => {
    for (const [rows, blocks, batch, threads] of shapes) {
      const cols = blocks * BLOCK[type].elems;
      if (BLOCK[type].elems === 256 && blocks > 9) continue; // keep K-quant cases small
      const w = randomWeights(type, rows, cols, rows * 31 + blocks);
      const x = randomActivations(batch * cols, batch * 7 + blocks);
      const alone = simd.map((path) => {
        const out = new Float32Array(batch * rows);
        for (let b = 0; b < batch; b++) out.set(k.matmul(type, path, w, rows, cols, x.subarray(b * cols, (b + 1) * cols), 1, 1), b * rows);
        return out;
      });
      simd.forEach((path, p) => {
        const y = k.matmul(type, path, w, rows, cols, x, batch, threads);
        const at = firstDifference(y, alone[p]);
        if (at >= 0)
          throw new Error(`${path} rows=${rows} cols=${cols} batch=${batch}: output ${at} is ${y[at]}, alone ${alone[p][at]}`);
        // and every SIMD path agrees (q4_K's AVX2 and AVX-512 kernels sum in different orders)
        if (type !== GgmlType.Q4_K) expect(firstDifference(y, alone[0])).toBe(-1);
      });
    }
  });
});
