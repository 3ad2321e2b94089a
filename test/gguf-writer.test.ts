// GgufWriter round trips through the native reader, and the random tensor
// generators produce valid blocks whose values have the asked distribution.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon } from '../server/src/engine/addon';
import { readGgufMetadata } from '../server/src/engine/gguf';
import { f16ToF32, f32ToBf16, f32ToF16, randomTensorSource, tensorSeed } from '../server/src/engine/gguf-random';
import { GGML_TYPES, GgmlTypeName, GgufWriter, tensorBytes, TensorSource } from '../server/src/engine/gguf-writer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-writer-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function collect(src: TensorSource): Uint8Array {
  if (!(typeof src === 'function')) return src;
  const parts: Uint8Array[] = [];
  src((c) => parts.push(Uint8Array.from(c)));
  return Buffer.concat(parts);
}

function tensorBytesInFile(file: string, offset: number, nbytes: number): Buffer {
  const fd = fs.openSync(file, 'r');
  const out = Buffer.alloc(nbytes);
  fs.readSync(fd, out, 0, nbytes, offset);
  fs.closeSync(fd);
  return out;
}

// ---- reference dequantization (ggml's dequantize_row_*), independent of the generator ----

function dequantize(type: GgmlTypeName, b: Uint8Array): Float64Array {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  const h = (o: number): number => f16ToF32(v.getUint16(o, true));
  switch (type) {
    case 'f32':
      for (let o = 0; o < b.length; o += 4) out.push(v.getFloat32(o, true));
      break;
    case 'f16':
      for (let o = 0; o < b.length; o += 2) out.push(h(o));
      break;
    case 'bf16':
      for (let o = 0; o < b.length; o += 2) out.push(new Float32Array(new Uint32Array([v.getUint16(o, true) << 16]).buffer)[0]);
      break;
    case 'q8_0':
      for (let o = 0; o < b.length; o += 34) for (let i = 0; i < 32; i++) out.push(h(o) * v.getInt8(o + 2 + i));
      break;
    case 'q4_0':
      for (let o = 0; o < b.length; o += 18) {
        const d = h(o);
        const lo: number[] = [];
        const hi: number[] = [];
        for (let i = 0; i < 16; i++) {
          lo.push(d * ((b[o + 2 + i] & 0xf) - 8));
          hi.push(d * ((b[o + 2 + i] >> 4) - 8));
        }
        out.push(...lo, ...hi);
      }
      break;
    case 'q5_0':
      for (let o = 0; o < b.length; o += 22) {
        const d = h(o);
        const qh = v.getUint32(o + 2, true);
        const lo: number[] = [];
        const hi: number[] = [];
        for (let i = 0; i < 16; i++) {
          lo.push(d * ((b[o + 6 + i] & 0xf) + 16 * ((qh >>> i) & 1) - 16));
          hi.push(d * ((b[o + 6 + i] >> 4) + 16 * ((qh >>> (i + 16)) & 1) - 16));
        }
        out.push(...lo, ...hi);
      }
      break;
    case 'q4_1':
    case 'q5_1': {
      const five = type === 'q5_1';
      const size = five ? 24 : 20;
      for (let o = 0; o < b.length; o += size) {
        const d = h(o);
        const m = h(o + 2);
        const qh = five ? v.getUint32(o + 4, true) : 0;
        const qs = o + (five ? 8 : 4);
        const lo: number[] = [];
        const hi: number[] = [];
        for (let i = 0; i < 16; i++) {
          lo.push(d * ((b[qs + i] & 0xf) + 16 * ((qh >>> i) & 1)) + m);
          hi.push(d * ((b[qs + i] >> 4) + 16 * ((qh >>> (i + 16)) & 1)) + m);
        }
        out.push(...lo, ...hi);
      }
      break;
    }
    case 'q4_K':
      for (let o = 0; o < b.length; o += 144) {
        const d = h(o);
        const dmin = h(o + 2);
        const s = b.subarray(o + 4, o + 16);
        const scaleMin = (j: number): [number, number] =>
          j < 4
            ? [s[j] & 63, s[j + 4] & 63]
            : [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
        for (let g = 0; g < 4; g++) {
          const q = b.subarray(o + 16 + 32 * g, o + 48 + 32 * g);
          const [sc1, m1] = scaleMin(2 * g);
          const [sc2, m2] = scaleMin(2 * g + 1);
          for (let l = 0; l < 32; l++) out.push(d * sc1 * (q[l] & 0xf) - dmin * m1);
          for (let l = 0; l < 32; l++) out.push(d * sc2 * (q[l] >> 4) - dmin * m2);
        }
      }
      break;
    case 'q5_K':
      for (let o = 0; o < b.length; o += 176) {
        const d = h(o);
        const dmin = h(o + 2);
        const s = b.subarray(o + 4, o + 16);
        const scaleMin = (j: number): [number, number] =>
          j < 4
            ? [s[j] & 63, s[j + 4] & 63]
            : [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
        const qh = b.subarray(o + 16, o + 48);
        for (let g = 0; g < 4; g++) {
          const q = b.subarray(o + 48 + 32 * g, o + 80 + 32 * g);
          const [sc1, m1] = scaleMin(2 * g);
          const [sc2, m2] = scaleMin(2 * g + 1);
          for (let l = 0; l < 32; l++) out.push(d * sc1 * ((q[l] & 0xf) + 16 * ((qh[l] >> (2 * g)) & 1)) - dmin * m1);
          for (let l = 0; l < 32; l++) out.push(d * sc2 * ((q[l] >> 4) + 16 * ((qh[l] >> (2 * g + 1)) & 1)) - dmin * m2);
        }
      }
      break;
    case 'q6_K':
      for (let o = 0; o < b.length; o += 210) {
        const d = h(o + 208);
        const y = new Array<number>(256);
        for (let n = 0; n < 2; n++) {
          const ql = o + 64 * n;
          const qh = o + 128 + 32 * n;
          const sc = o + 192 + 8 * n;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const q1 = ((b[ql + l] & 0xf) | (((b[qh + l] >> 0) & 3) << 4)) - 32;
            const q2 = ((b[ql + l + 32] & 0xf) | (((b[qh + l] >> 2) & 3) << 4)) - 32;
            const q3 = ((b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4)) - 32;
            const q4 = ((b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4)) - 32;
            y[128 * n + l] = d * v.getInt8(sc + is) * q1;
            y[128 * n + l + 32] = d * v.getInt8(sc + is + 2) * q2;
            y[128 * n + l + 64] = d * v.getInt8(sc + is + 4) * q3;
            y[128 * n + l + 96] = d * v.getInt8(sc + is + 6) * q4;
          }
        }
        out.push(...y);
      }
      break;
  }
  return Float64Array.from(out);
}

function stats(x: Float64Array): { mean: number; std: number } {
  let s = 0;
  let s2 = 0;
  for (const v of x) {
    s += v;
    s2 += v * v;
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean) };
}

describe('half-precision conversions', () => {
  test('f32ToF16 rounds to nearest even and handles edge values', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie -> even (up)
    for (const x of [0.1, -3.75, 1234.5, 6.1e-5, 1e-6]) expect(Math.abs(f16ToF32(f32ToF16(x)) - x)).toBeLessThan(Math.abs(x) * 1e-3 + 6e-8);
  });
  test('f32ToBf16 keeps the top 16 bits, rounded', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(-2.5)).toBe(0xc020);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });
});

describe('round trip through the native reader', () => {
  const file = path.join(dir, 'roundtrip.gguf');
  const tensorData: Record<string, Uint8Array> = {};
  const types: GgmlTypeName[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q5_0', 'q4_1', 'q5_1', 'q4_K', 'q5_K', 'q6_K'];

  beforeAll(() => {
    const w = new GgufWriter();
    w.set('general.architecture', 'string', 'llama')
      .set('t.u8', 'uint8', 255)
      .set('t.i8', 'int8', -128)
      .set('t.u16', 'uint16', 65535)
      .set('t.i16', 'int16', -32768)
      .set('t.u32', 'uint32', 4294967295)
      .set('t.i32', 'int32', -2147483648)
      .set('t.f32', 'float32', 0.5)
      .set('t.f64', 'float64', Math.PI)
      .set('t.bool', 'bool', true)
      .set('t.u64.small', 'uint64', 1234567)
      .set('t.u64.big', 'uint64', 2n ** 64n - 1n)
      .set('t.i64.big', 'int64', -(2n ** 62n))
      .set('t.str', 'string', 'héllo ▁ wörld 🙂')
      .set('t.empty', 'string', '')
      .set('t.arr.str', 'array<string>', ['a', '', 'Ġt', '<0x0A>'])
      .set('t.arr.f32', 'array<float32>', Float32Array.from([1.5, -2, 0]))
      .set('t.arr.i32.from.js', 'array<int32>', [1, -2, 3])
      .set('t.arr.u8', 'array<uint8>', Uint8Array.from([0, 255]))
      .set('t.arr.u64', 'array<uint64>', [1n, 2n ** 63n])
      .set('t.arr.f64', 'array<float64>', [0.25])
      .set('t.arr.bool', 'array<bool>', [true, false, true])
      .set('t.arr.nested', 'array<array<int16>>', [[1, 2], [], [-3]])
      .set('t.arr.empty', 'array<uint32>', []);
    types.forEach((type, i) => {
      const dims = type.endsWith('_K') ? [256, 3] : [64, 3];
      const bytes = collect(randomTensorSource(type, dims, { seed: i, std: 0.5 }));
      tensorData[`t.${type}`] = bytes;
      w.addTensor(`t.${type}`, type, dims, bytes);
    });
    // a streamed source emitting odd-sized chunks
    const streamed = new Uint8Array(tensorBytes('f32', [10])).map((_, i) => i);
    tensorData['t.streamed'] = streamed;
    w.addTensor('t.streamed', 'f32', [10], (emit) => {
      emit(streamed.subarray(0, 7));
      emit(streamed.subarray(7));
    });
    const size = w.write(file);
    expect(size).toBe(fs.statSync(file).size);
    expect(size).toBe(w.fileSize());
  });

  test('metadata values and types come back', () => {
    const md = readGgufMetadata(file);
    expect(md.version).toBe(3);
    const m = md.metadata;
    expect([m['t.u8'], m['t.i8'], m['t.u16'], m['t.i16'], m['t.u32'], m['t.i32']]).toEqual([
      255, -128, 65535, -32768, 4294967295, -2147483648,
    ]);
    expect([m['t.f32'], m['t.f64'], m['t.bool']]).toEqual([0.5, Math.PI, true]);
    expect(m['t.u64.small']).toBe(1234567);
    expect(m['t.u64.big']).toBe(2n ** 64n - 1n);
    expect(m['t.i64.big']).toBe(-(2n ** 62n));
    expect(m['t.str']).toBe('héllo ▁ wörld 🙂');
    expect(m['t.empty']).toBe('');
    expect(m['t.arr.str']).toEqual(['a', '', 'Ġt', '<0x0A>']);
    expect(Array.from(m['t.arr.f32'] as Float32Array)).toEqual([1.5, -2, 0]);
    expect(Array.from(m['t.arr.i32.from.js'] as Int32Array)).toEqual([1, -2, 3]);
    expect(Array.from(m['t.arr.u8'] as Uint8Array)).toEqual([0, 255]);
    expect(Array.from(m['t.arr.u64'] as BigUint64Array)).toEqual([1n, 2n ** 63n]);
    expect(Array.from(m['t.arr.f64'] as Float64Array)).toEqual([0.25]);
    expect(m['t.arr.bool']).toEqual([true, false, true]);
    expect((m['t.arr.nested'] as Int16Array[]).map((a) => Array.from(a))).toEqual([[1, 2], [], [-3]]);
    expect(Array.from(m['t.arr.empty'] as Uint32Array)).toEqual([]);
    expect(md.valueTypes).toMatchObject({
      't.u8': 'uint8',
      't.i64.big': 'int64',
      't.arr.str': 'array<string>',
      't.arr.i32.from.js': 'array<int32>',
      't.arr.bool': 'array<bool>',
      't.arr.nested': 'array<array<int16>>',
    });
    expect(Object.keys(m)[0]).toBe('general.architecture'); // insertion order kept
  });

  test('tensor list and bytes come back', () => {
    const md = readGgufMetadata(file);
    expect(md.tensors.map((t) => [t.name, t.type])).toEqual([
      ...types.map((t) => [`t.${t}`, t]),
      ['t.streamed', 'f32'],
    ]);
    for (const t of md.tensors) {
      expect(t.offset % 32).toBe(0);
      expect(tensorBytesInFile(file, t.offset, t.nbytes).equals(Buffer.from(tensorData[t.name]))).toBe(true);
    }
  });

  test('a non-default alignment is written and honoured', () => {
    const f = path.join(dir, 'align.gguf');
    const w = new GgufWriter({ alignment: 256 });
    w.addTensor('a', 'f32', [3], new Uint8Array(12).fill(1));
    w.addTensor('b', 'f32', [5], new Uint8Array(20).fill(2));
    w.write(f);
    const md = readGgufMetadata(f);
    expect(md.alignment).toBe(256);
    expect(md.metadata['general.alignment']).toBe(256);
    expect(md.dataOffset % 256).toBe(0);
    for (const t of md.tensors) expect((t.offset - md.dataOffset) % 256).toBe(0);
    expect(tensorBytesInFile(f, md.tensors[1].offset, 20).every((x) => x === 2)).toBe(true);
  });
});

describe('writer refuses bad input', () => {
  test('out-of-range and mistyped values name the key', () => {
    const w = new GgufWriter();
    expect(() => w.set('k.u8', 'uint8', 256)).toThrow(/k.u8.*256 is not a valid uint8/);
    expect(() => w.set('k.i32', 'int32', 1.5)).toThrow(/not a valid int32/);
    expect(() => w.set('k.s', 'string', 3)).toThrow(/k.s.*expected a string/);
    expect(() => w.set('k.a', 'array<uint16>', [1, 70000])).toThrow(/'k.a'\[1\]: 70000 is not a valid uint16/);
    expect(() => w.set('k.u64', 'uint64', 2 ** 60)).toThrow(/bigint/);
    expect(() => w.set('k.t', 'array<float16>', [])).toThrow(/unknown GGUF value type 'float16'/);
  });
  test('tensors: duplicate names, wrong sizes, bad shapes, short sources', () => {
    const w = new GgufWriter();
    w.addTensor('x', 'f32', [2], new Uint8Array(8));
    expect(() => w.addTensor('x', 'f32', [2], new Uint8Array(8))).toThrow(/duplicate tensor name 'x'/);
    expect(() => w.addTensor('y', 'f32', [2], new Uint8Array(7))).toThrow(/7 bytes given.*needs 8/);
    expect(() => w.addTensor('z', 'q8_0', [33], new Uint8Array(0))).toThrow(/not a multiple of q8_0's block size 32/);
    expect(() => w.addTensor('z', 'f32', [0], new Uint8Array(0))).toThrow(/bad dimension 0/);
    w.addTensor('short', 'f32', [4], (emit) => emit(new Uint8Array(8)));
    const f = path.join(dir, 'short.gguf');
    expect(() => w.write(f)).toThrow(/'short': source emitted 8 bytes, expected 16/);
    expect(fs.existsSync(f)).toBe(false);
    expect(fs.existsSync(f + '.partial')).toBe(false);
  });
});

describe('random tensor data', () => {
  const cases: Array<[GgmlTypeName, number[]]> = [
    ['f32', [256, 64]],
    ['f16', [256, 64]],
    ['bf16', [256, 64]],
    ['q8_0', [256, 64]],
    ['q4_0', [256, 64]],
    ['q5_0', [256, 64]],
    ['q4_1', [256, 64]],
    ['q5_1', [256, 64]],
    ['q4_K', [256, 64]],
    ['q5_K', [256, 64]],
    ['q6_K', [256, 64]],
  ];
  for (const [type, dims] of cases) {
    test(`${type}: mean ~0, std ~target, deterministic per seed`, () => {
      const a = collect(randomTensorSource(type, dims, { seed: 7, std: 0.1 }));
      expect(a.length).toBe(tensorBytes(type, dims));
      const { mean, std } = stats(dequantize(type, a));
      expect(Math.abs(mean)).toBeLessThan(0.01);
      expect(std).toBeGreaterThan(0.09);
      expect(std).toBeLessThan(0.11);
      const again = collect(randomTensorSource(type, dims, { seed: 7, std: 0.1 }));
      expect(Buffer.from(again).equals(Buffer.from(a))).toBe(true);
      const other = collect(randomTensorSource(type, dims, { seed: 8, std: 0.1 }));
      expect(Buffer.from(other).equals(Buffer.from(a))).toBe(false);
    });
  }
  test("the engine's scalar dequantizer reads the random blocks as the reference decoder does", () => {
    const kernels = loadAddon().kernels;
    for (const [type] of cases) {
      const bytes = collect(randomTensorSource(type, [512], { seed: 3, std: 0.1 }));
      const engine = kernels.dequantizeRow(GGML_TYPES[type].id, 'scalar', bytes, 512) as Float32Array;
      const ref = dequantize(type, bytes);
      let worst = 0;
      for (let i = 0; i < 512; i++) worst = Math.max(worst, Math.abs(engine[i] - ref[i]));
      expect([type, worst < 1e-6]).toEqual([type, true]); // float32 rounding only
    }
  });
  test('float types take a mean (norm weights near 1)', () => {
    const { mean, std } = stats(dequantize('f32', collect(randomTensorSource('f32', [4096], { seed: 1, std: 0.1, mean: 1 }))));
    expect(mean).toBeCloseTo(1, 2);
    expect(std).toBeCloseTo(0.1, 2);
  });
  test('per-tensor seeds differ by name and seed', () => {
    expect(tensorSeed(1, 'blk.0.attn_q.weight')).not.toBe(tensorSeed(1, 'blk.0.attn_k.weight'));
    expect(tensorSeed(1, 'x')).not.toBe(tensorSeed(2, 'x'));
    expect(tensorSeed(1, 'x')).toBe(tensorSeed(1, 'x'));
  });
});
