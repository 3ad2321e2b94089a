// CPU feature detection, path selection and argument checking of the kernel binding.
import * as os from 'node:os';
import { GgmlType, kernels } from '../server/src/engine/kernels';

const k = kernels();
const code = (c: string) => expect.objectContaining({ code: c });

describe('cpu features and paths', () => {
  test('the best path is supported and scalar is always there', () => {
    const paths = k.supportedPaths();
    expect(paths[0]).toBe('scalar');
    expect(paths).toContain(k.bestPath());
    const f = k.cpuFeatures();
    if (process.arch === 'x64') {
      expect(paths.includes('avx2')).toBe(f.avx2 && f.fma && f.f16c);
      expect(paths.includes('avx512')).toBe(f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma);
      if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) expect(k.bestPath()).toBe('avx512');
      expect(f.neon).toBe(false);
    }
  });

  test('physical cores are between 1 and the logical CPU count', () => {
    const n = k.physicalCores();
    expect(Number.isInteger(n)).toBe(true);
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(os.availableParallelism());
  });

  test('type info follows ggml', () => {
    expect(k.typeInfo(GgmlType.Q4_K)).toEqual({ name: 'q4_K', blockSize: 256, typeSize: 144, computable: true });
    expect(k.typeInfo(GgmlType.Q8_K).computable).toBe(false);
    expect(k.typeInfo(5).name).toBe('unknown');
  });
});

describe('forced path selection', () => {
  const w = new Uint8Array(34);
  const x = new Float32Array(32);
  test.each(['bogus', 'AVX2', 'avx512 ', 'avx512-vnni'])('unknown path %p throws INVALID_ARGUMENT', (p) => {
    expect(() => k.matmul(GgmlType.Q8_0, p as never, w, 1, 32, x, 1, 1)).toThrow(code('INVALID_ARGUMENT'));
    expect(() => k.dequantizeRow(GgmlType.Q8_0, p as never, w, 32)).toThrow(code('INVALID_ARGUMENT'));
  });
  test('an empty name picks the best path', () => {
    expect(Array.from(k.dequantizeRow(GgmlType.Q8_0, '' as never, w, 32))).toEqual(Array.from(k.dequantizeRow(GgmlType.Q8_0, k.bestPath(), w, 32)));
  });
  test('a path this CPU lacks throws INVALID_ARGUMENT', () => {
    const missing = (['avx2', 'avx512', 'neon'] as const).filter((p) => !k.supportedPaths().includes(p));
    expect(missing.length).toBeGreaterThan(0); // no CPU has both x86 and ARM paths
    for (const p of missing) expect(() => k.dequantizeRow(GgmlType.Q8_0, p, w, 32)).toThrow(/not supported/);
    for (const p of missing) expect(() => k.dequantizeRow(GgmlType.Q8_0, p, w, 32)).toThrow(code('INVALID_ARGUMENT'));
  });
});

describe('bad input gets a clear error', () => {
  const x = new Float32Array(64);
  test.each([
    ['wrong weight byte count', () => k.matmul(GgmlType.Q8_0, 'scalar', new Uint8Array(33), 1, 32, x.subarray(0, 32), 1, 1)],
    ['cols not a block multiple', () => k.matmul(GgmlType.Q4_0, 'scalar', new Uint8Array(18), 1, 16, x.subarray(0, 16), 1, 1)],
    ['x too short', () => k.matmul(GgmlType.F32, 'scalar', new Uint8Array(256), 1, 64, x.subarray(0, 63), 1, 1)],
    ['uncomputable type', () => k.matmul(GgmlType.Q8_K, 'scalar', new Uint8Array(292), 1, 256, new Float32Array(256), 1, 1)],
    ['unknown type id', () => k.dequantizeRow(5, 'scalar', new Uint8Array(22), 32)],
    ['zero threads', () => k.matmul(GgmlType.F32, 'scalar', new Uint8Array(256), 1, 64, x, 1, 0)],
    ['dequantize length mismatch', () => k.dequantizeRow(GgmlType.Q4_K, 'scalar', new Uint8Array(143), 256)],
    ['bandwidth buffer too small', () => k.readBandwidth(1000, 1)],
    ['q8_K row not whole blocks', () => k.quantizeRowQ8K('scalar', new Float32Array(100))],
  ])('%s', (_name, fn) => {
    expect(fn).toThrow(code('INVALID_ARGUMENT'));
  });
});

test('read bandwidth is a positive GB/s figure', () => {
  const gbs = k.readBandwidth(16 << 20, 1);
  expect(gbs).toBeGreaterThan(0.5);
  expect(gbs).toBeLessThan(10000);
});
