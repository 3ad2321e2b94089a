// Pins the scalar reference to ggml's block layouts with hand-built blocks,
// and checks every SIMD path's dequantization, fp16 conversion and
// activation quantization against the scalar one bit for bit.
import { GgmlType, kernels } from '../server/src/engine/kernels';
import { randomActivations, randomWeights, rng } from './kernel-data';

const k = kernels();
const simdPaths = k.supportedPaths().filter((p) => p !== 'scalar');
const allPaths = [...k.supportedPaths(), ...(k.cpuFeatures().avx512vnni ? ['avx512-novnni' as const] : [])];

/** Index of the first differing element (-1 if the arrays are bitwise equal) — fast on large arrays. */
function firstDifference(a: ArrayBufferView, b: ArrayBufferView): number {
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.equals(y)) return -1;
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return i;
  return Math.min(x.length, y.length);
}

const H = { one: 0x3c00, half: 0x3800, two: 0x4000, minusTwo: 0xc000, quarter: 0x3400 };

function bytes(n: number, fill: (v: DataView, u8: Uint8Array) => void): Uint8Array {
  const u8 = new Uint8Array(n);
  fill(new DataView(u8.buffer), u8);
  return u8;
}

describe('scalar dequantization matches ggml layouts (hand-built blocks)', () => {
  test('f32 and bf16', () => {
    const f32 = bytes(8, (v) => {
      v.setFloat32(0, 1.5, true);
      v.setFloat32(4, -2.25, true);
    });
    expect(Array.from(k.dequantizeRow(GgmlType.F32, 'scalar', f32, 2))).toEqual([1.5, -2.25]);
    // bf16 is the top half of an f32: 0x3f80 = 1, 0xc040 = -3, 0x3ec0 = 0.375
    const bf = Uint16Array.from([0x3f80, 0xc040, 0x3ec0]);
    expect(Array.from(k.dequantizeRow(GgmlType.BF16, 'scalar', new Uint8Array(bf.buffer), 3))).toEqual([1, -3, 0.375]);
  });

  test('f16: normals, subnormals, zero, infinities, NaN', () => {
    const h = Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x0400]);
    const out = k.dequantizeRow(GgmlType.F16, 'scalar', new Uint8Array(h.buffer), h.length);
    expect(Array.from(out.subarray(0, 9))).toEqual([
      1,
      -2,
      0.333251953125,
      65504,
      2 ** -24,
      1023 * 2 ** -24,
      -0,
      Infinity,
      -Infinity,
    ]);
    expect(Number.isNaN(out[9])).toBe(true);
    expect(out[10]).toBe(2 ** -14);
  });

  test('q8_0: fp16 scale then 32 int8', () => {
    const b = bytes(34, (v) => {
      v.setUint16(0, H.half, true);
      for (let j = 0; j < 32; j++) v.setInt8(2 + j, j - 16);
    });
    const out = Array.from(k.dequantizeRow(GgmlType.Q8_0, 'scalar', b, 32));
    expect(out).toEqual(Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5));
  });

  test('q4_0: (q - 8) * d, low nibbles are elements 0..15, high nibbles 16..31', () => {
    const b = bytes(18, (v, u8) => {
      v.setUint16(0, H.two, true);
      for (let j = 0; j < 16; j++) u8[2 + j] = j | ((15 - j) << 4);
    });
    const out = Array.from(k.dequantizeRow(GgmlType.Q4_0, 'scalar', b, 32));
    const want = [];
    for (let j = 0; j < 16; j++) want.push((j - 8) * 2);
    for (let j = 0; j < 16; j++) want.push((15 - j - 8) * 2);
    expect(out).toEqual(want);
    expect(out[0]).toBe(-16); // byte 0 = 0xf0: low nibble 0 -> (0 - 8) * 2
    expect(out[16]).toBe(14); // its high nibble 15 -> (15 - 8) * 2
  });

  test('q5_0: (q - 16) * d, bit 4 of element e is bit e of qh (little endian)', () => {
    // Encode chosen 5-bit values by ggml's layout, independently of the C++ code.
    const r = rng(5);
    const q = Array.from({ length: 32 }, () => Math.floor(r() * 32));
    const b = bytes(22, (v, u8) => {
      v.setUint16(0, H.minusTwo, true);
      let qh = 0;
      for (let e = 0; e < 32; e++) if (q[e] & 16) qh |= 2 ** e;
      v.setUint32(2, qh, true);
      for (let j = 0; j < 16; j++) u8[6 + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    });
    expect(Array.from(k.dequantizeRow(GgmlType.Q5_0, 'scalar', b, 32))).toEqual(q.map((qe) => -2 * (qe - 16)));
    // by hand: qh bytes 01 00 00 80 set bit 0 (element 0) and bit 31 (element 31)
    const b2 = bytes(22, (v, u8) => {
      v.setUint16(0, H.one, true);
      u8[2] = 0x01;
      u8[5] = 0x80;
      u8[6] = 0x73; // element 0: nibble 3, element 16: nibble 7
      u8[21] = 0xf2; // element 15: nibble 2, element 31: nibble 15
    });
    const out2 = k.dequantizeRow(GgmlType.Q5_0, 'scalar', b2, 32);
    expect([out2[0], out2[16], out2[15], out2[31], out2[1]]).toEqual([3 + 16 - 16, 7 - 16, 2 - 16, 15 + 16 - 16, -16]);
  });

  test('q4_1: q * d + m, nibbles as in q4_0 (no offset)', () => {
    const b = bytes(20, (v, u8) => {
      v.setUint16(0, H.half, true); // d
      v.setUint16(2, H.minusTwo, true); // m
      for (let j = 0; j < 16; j++) u8[4 + j] = j | ((15 - j) << 4);
    });
    const out = Array.from(k.dequantizeRow(GgmlType.Q4_1, 'scalar', b, 32));
    const want = [];
    for (let j = 0; j < 16; j++) want.push(j * 0.5 - 2);
    for (let j = 0; j < 16; j++) want.push((15 - j) * 0.5 - 2);
    expect(out).toEqual(want);
    expect([out[0], out[16], out[31]]).toEqual([-2, 5.5, -2]); // byte 0 = 0xf0: q 0 and 15; byte 15 = 0x0f: q 0
  });

  test('q5_1: q * d + m, bit 4 of element e is bit e of qh (after d, m)', () => {
    const r = rng(6);
    const q = Array.from({ length: 32 }, () => Math.floor(r() * 32));
    const b = bytes(24, (v, u8) => {
      v.setUint16(0, H.quarter, true); // d
      v.setUint16(2, H.one, true); // m
      let qh = 0;
      for (let e = 0; e < 32; e++) if (q[e] & 16) qh |= 2 ** e;
      v.setUint32(4, qh, true);
      for (let j = 0; j < 16; j++) u8[8 + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    });
    expect(Array.from(k.dequantizeRow(GgmlType.Q5_1, 'scalar', b, 32))).toEqual(q.map((qe) => 0.25 * qe + 1));
    // by hand: qh bytes 00 80 00 00 set bit 15 (element 15); qs[15] = 0x21: element 15 nibble 1, element 31 nibble 2
    const b2 = bytes(24, (v, u8) => {
      v.setUint16(0, H.one, true);
      u8[5] = 0x80;
      u8[8 + 15] = 0x21;
    });
    const out2 = k.dequantizeRow(GgmlType.Q5_1, 'scalar', b2, 32);
    expect([out2[15], out2[31], out2[0]]).toEqual([1 + 16, 2, 0]);
  });

  test('q4_K: 6-bit scales/mins packing and nibble groups of 64', () => {
    // scales[0..3]: sc0..3 in the low 6 bits, their top 2 bits extend sc4..7
    // scales[4..7]: m0..3 in the low 6 bits, top 2 bits extend m4..7
    // scales[8..11]: low nibble sc4..7, high nibble m4..7
    const packed = [1 | (1 << 6), 2, 3, 4 | (3 << 6), 5, 6, 7 | (2 << 6), 8, 0x21, 0x43, 0x65, 0x87];
    const sc = [1, 2, 3, 4, 1 + 16, 3, 5, 7 + 48];
    const mn = [5, 6, 7, 8, 2, 4, 6 + 32, 8];
    const b = bytes(144, (v, u8) => {
      v.setUint16(0, H.one, true); // d
      v.setUint16(2, H.half, true); // dmin
      packed.forEach((p, i) => (u8[4 + i] = p));
      for (let g = 0; g < 4; g++) for (let l = 0; l < 32; l++) u8[16 + g * 32 + l] = ((l + g) % 16) | ((15 - ((l + 3 * g) % 16)) << 4);
    });
    const out = Array.from(k.dequantizeRow(GgmlType.Q4_K, 'scalar', b, 256));
    const want = [];
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) want.push(1 * sc[2 * g] * ((l + g) % 16) - 0.5 * mn[2 * g]);
      for (let l = 0; l < 32; l++) want.push(1 * sc[2 * g + 1] * (15 - ((l + 3 * g) % 16)) - 0.5 * mn[2 * g + 1]);
    }
    expect(out).toEqual(want);
    expect(out[0]).toBe(0 - 2.5); // q 0, scale 1, min 5 * 0.5
    expect(out[32]).toBe(2 * 15 - 3); // group 0 high nibble: q 15, scale 2, min 6 * 0.5
    expect(out[255]).toBe(55 * (15 - ((31 + 9) % 16)) - 4); // sub-block 7: scale 55, min 8
  });

  test('q5_K: Q4_K scales/mins and nibble groups, bit 4 of sub-block j element l is bit j of qh[l]', () => {
    // same packed scales/mins as the q4_K case
    const packed = [1 | (1 << 6), 2, 3, 4 | (3 << 6), 5, 6, 7 | (2 << 6), 8, 0x21, 0x43, 0x65, 0x87];
    const sc = [1, 2, 3, 4, 1 + 16, 3, 5, 7 + 48];
    const mn = [5, 6, 7, 8, 2, 4, 6 + 32, 8];
    const r = rng(11);
    const q = Array.from({ length: 256 }, () => Math.floor(r() * 32));
    const b = bytes(176, (v, u8) => {
      v.setUint16(0, H.one, true); // d
      v.setUint16(2, H.half, true); // dmin
      packed.forEach((p, i) => (u8[4 + i] = p));
      for (let e = 0; e < 256; e++) {
        const j = e >> 5, l = e & 31;
        u8[48 + 32 * (j >> 1) + l] |= (j & 1 ? (q[e] & 15) << 4 : q[e] & 15);
        u8[16 + l] |= (q[e] >> 4) << j;
      }
    });
    const out = Array.from(k.dequantizeRow(GgmlType.Q5_K, 'scalar', b, 256));
    expect(out).toEqual(q.map((qe, e) => sc[e >> 5] * qe - 0.5 * mn[e >> 5]));
    // by hand: qs[0] = 0x3a, qh[0] = 0b10: element 0 = 10 (bit 0 clear), element 32 = 3 + 16 (bit 1 set)
    const b2 = bytes(176, (v, u8) => {
      v.setUint16(0, H.two, true);
      u8[4] = 1; // scale 0 = 1
      u8[5] = 3; // scale 1 = 3
      u8[16] = 0b10;
      u8[48] = 0x3a;
    });
    const out2 = k.dequantizeRow(GgmlType.Q5_K, 'scalar', b2, 256);
    expect([out2[0], out2[32], out2[1]]).toEqual([2 * 1 * 10, 2 * 3 * 19, 0]);
  });

  test('q6_K: ql/qh bit layout, int8 scales per 16, minus 32', () => {
    // Encode chosen 6-bit values q[e] by ggml's layout, independently of the C++ code.
    const r = rng(7);
    const q = Array.from({ length: 256 }, () => Math.floor(r() * 64));
    const scales = Array.from({ length: 16 }, (_, i) => (i % 2 ? -1 : 1) * (i * 8 + 1)); // -121..121
    scales[15] = -128;
    const b = bytes(210, (v, u8) => {
      for (let e = 0; e < 256; e++) {
        const half = e >> 7, i = e & 127, kk = i >> 5, l = i & 31;
        const qlIdx = half * 64 + l + (kk & 1) * 32;
        u8[qlIdx] |= kk >= 2 ? (q[e] & 15) << 4 : q[e] & 15;
        u8[128 + half * 32 + l] |= (q[e] >> 4) << (2 * kk);
      }
      scales.forEach((s, i) => v.setInt8(192 + i, s));
      v.setUint16(208, H.quarter, true);
    });
    const out = Array.from(k.dequantizeRow(GgmlType.Q6_K, 'scalar', b, 256));
    expect(out).toEqual(q.map((qe, e) => 0.25 * scales[e >> 4] * (qe - 32)));
    // spot check by hand: element 64 = high nibble of ql[0] with qh[0] bits 4..5
    const b2 = bytes(210, (v, u8) => {
      u8[0] = 0x21;
      u8[128] = 0b11100100;
      v.setInt8(192 + 4, 3);
      v.setUint16(208, H.one, true);
    });
    const out2 = k.dequantizeRow(GgmlType.Q6_K, 'scalar', b2, 256);
    expect(out2[64]).toBe(3 * ((2 | (2 << 4)) - 32)); // ql nibble 2, qh 2 -> 34 - 32 = 2, times scale 3
  });
});

describe('activation quantization (scalar reference)', () => {
  test('q8_0: d = amax / 127 as fp16, values rounded to nearest', () => {
    const x = Float32Array.from({ length: 32 }, (_, j) => j - 16);
    const q = k.quantizeRowQ8_0('scalar', x);
    expect(q.length).toBe(34);
    const v = new DataView(q.buffer);
    const d = v.getUint16(0, true);
    expect(d).toBe(k.fp32ToFp16('scalar', Float32Array.of(16 / 127))[0]);
    const qs = Array.from(new Int8Array(q.buffer, 2, 32));
    expect(qs[0]).toBe(-127); // the extreme value
    expect(qs[16]).toBe(0);
    expect(qs[17]).toBe(8); // 1 * 127/16 = 7.94 -> 8
    expect(qs[31]).toBe(119); // 15 * 7.9375 = 119.06
  });

  test('q8_1: q8_0 values with 127 / amax, plus s = fp16(d * sum(q)) from the f32 d', () => {
    const x = Float32Array.from({ length: 64 }, (_, j) => (j < 32 ? j - 10 : (j - 40) * 0.01));
    const q = k.quantizeRowQ8_1('scalar', x);
    expect(q.length).toBe(72);
    const v = new DataView(q.buffer);
    const f16 = (f: number) => k.fp32ToFp16('scalar', Float32Array.of(f))[0];
    // block 0: amax 21 -> d = 21/127, values round((j - 10) * 127 / 21)
    const d0 = Math.fround(21 / 127);
    const q0 = Array.from({ length: 32 }, (_, j) => Math.round(Math.fround(Math.fround(j - 10) * Math.fround(127 / 21))));
    expect(Array.from(new Int8Array(q.buffer, 4, 32))).toEqual(q0);
    expect(q0[31]).toBe(127);
    expect(v.getUint16(0, true)).toBe(f16(d0));
    const sum0 = q0.reduce((a, b) => a + b, 0);
    expect(v.getUint16(2, true)).toBe(f16(Math.fround(d0 * sum0)));
    // block 1: amax 0.23 (element 63)
    const qs1 = new Int8Array(q.buffer, 36 + 4, 32);
    expect(qs1[31]).toBe(127);
    expect(qs1[8]).toBe(0); // element 40: 0
    let sum1 = 0;
    for (const e of qs1) sum1 += e;
    expect(v.getUint16(38, true)).toBe(f16(Math.fround(Math.fround(Math.fround(0.23) / 127) * sum1)));
    // an all-zero block: d = s = 0
    expect(Array.from(k.quantizeRowQ8_1('scalar', new Float32Array(32)))).toEqual(new Array(36).fill(0));
  });

  test('q8_K: largest magnitude maps to -127, d = max / -127, bsums per 16', () => {
    const x = Float32Array.from({ length: 256 }, (_, j) => Math.sin(j) * (j === 100 ? 3 : 1));
    const q = k.quantizeRowQ8K('scalar', x);
    expect(q.length).toBe(292);
    const v = new DataView(q.buffer);
    const qs = new Int8Array(q.buffer, 4, 256);
    expect(qs[100]).toBe(-127); // whatever its sign
    expect(v.getFloat32(0, true)).toBeCloseTo(x[100] / -127, 7);
    for (let g = 0; g < 16; g++) {
      let s = 0;
      for (let i = 0; i < 16; i++) s += qs[g * 16 + i];
      expect(v.getInt16(260 + 2 * g, true)).toBe(s);
    }
    // all-zero input gives a zero block
    expect(Array.from(k.quantizeRowQ8K('scalar', new Float32Array(256)))).toEqual(new Array(292).fill(0));
  });
});

describe.each(simdPaths)('%s path agrees with scalar bit for bit', (path) => {
  const paths = path === 'avx512' && allPaths.includes('avx512-novnni') ? [path, 'avx512-novnni' as const] : [path];
  test.each([GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_1, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K])(
    'dequantize_row of type %i',
    (type) => {
      for (const n of [256, 768, 2304]) {
        const w = randomWeights(type, 1, n, n + type);
        const want = k.dequantizeRow(type, 'scalar', w, n);
        for (const p of paths) expect(firstDifference(k.dequantizeRow(type, p, w, n), want)).toBe(-1);
      }
    },
  );

  test('fp16 conversion both ways', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const want = k.dequantizeRow(GgmlType.F16, 'scalar', new Uint8Array(all.buffer), 65536);
    for (const p of paths) expect(firstDifference(k.dequantizeRow(GgmlType.F16, p, new Uint8Array(all.buffer), 65536), want)).toBe(-1);
    // f32 -> f16: random bit patterns across the whole range, plus rounding ties
    const r = rng(99);
    const bits = new Uint32Array(200000).map(() => Math.floor(r() * 2 ** 32));
    const f = new Float32Array(bits.buffer);
    const ties = Float32Array.from({ length: 2048 }, (_, i) => 1 + (i + 0.5) / 1024);
    for (const x of [f, ties, Float32Array.of(65504, 65520, 65519.99, 1e-8, -1e-8, 2 ** -25, 3 * 2 ** -26)]) {
      const ref = k.fp32ToFp16('scalar', x);
      for (const p of paths) expect(firstDifference(k.fp32ToFp16(p, x), ref)).toBe(-1);
    }
  });

  test('activation quantizers', () => {
    for (const n of [256, 2304]) {
      const x = randomActivations(n, n);
      x[5] = 0;
      const zeros = new Float32Array(n);
      for (const input of [x, zeros]) {
        for (const p of paths) {
          expect(firstDifference(k.quantizeRowQ8_0(p, input), k.quantizeRowQ8_0('scalar', input))).toBe(-1);
          expect(firstDifference(k.quantizeRowQ8K(p, input), k.quantizeRowQ8K('scalar', input))).toBe(-1);
          expect(firstDifference(k.quantizeRowQ8_1(p, input), k.quantizeRowQ8_1('scalar', input))).toBe(-1);
        }
      }
    }
  });
});
