// Attention over a F16 cache. The AVX-512 path has a blocked kernel (16
// positions at a time, scores reduced together, weights from a vector exp)
// that must give, bit for bit, what the per-position loop in llama.cpp's
// flash-attention order gives: same value sums, maxima and weight sums. The
// cases cover partial blocks, head groups that do not fill the kernel's
// register groups, both head sizes it takes (and one it leaves to the loop),
// scores that raise the maximum at many keys, and weights that underflow.
// Each result is also checked against a float64 softmax, so equal garbage
// cannot pass.
import { KernelPathName, kernels } from '../server/src/engine/kernels';

const k = kernels();
const paths = k.supportedPaths().filter((p) => p !== 'scalar') as KernelPathName[];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function halves(values: number[]): Uint16Array {
  return k.fp32ToFp16('scalar', Float32Array.from(values));
}
const halfToFloat = (h: Uint16Array): Float32Array => {
  const out = new Float32Array(h.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  h.forEach((x, i) => {
    const sign = (x & 0x8000) << 16;
    const exp = (x >> 10) & 0x1f;
    const mant = x & 0x3ff;
    if (exp === 0) out[i] = (sign ? -1 : 1) * mant * 2 ** -24;
    else if (exp === 31) out[i] = mant ? NaN : sign ? -Infinity : Infinity;
    else {
      u[0] = sign | ((exp + 112) << 23) | (mant << 13);
      out[i] = f[0];
    }
  });
  return out;
};

type Pattern = 'random' | 'rising' | 'steep';
function makeCase(hd: number, span: number, nPos: number, pattern: Pattern, seed: number) {
  const r = rng(seed);
  const q = new Float32Array(span * hd).map(() => r() * 2 - 1);
  const kv: number[] = [];
  const vv: number[] = [];
  for (let p = 0; p < nPos; p++)
    for (let i = 0; i < hd; i++) {
      // rising: keys grow along the first head's query, so most keys raise the maximum
      const grow = pattern === 'rising' ? (p / nPos) * 3 * Math.sign(q[i]) : 0;
      kv.push((r() * 2 - 1) * 0.5 + grow);
      vv.push(r() * 4 - 2);
    }
  const scale = pattern === 'steep' ? 40 / Math.sqrt(hd) : 1 / Math.sqrt(hd); // steep: most weights underflow to 0
  return { q, k: halves(kv), v: halves(vv), scale };
}

function softmaxReference(hd: number, span: number, nPos: number, c: ReturnType<typeof makeCase>): Float64Array {
  const kf = halfToFloat(c.k);
  const vf = halfToFloat(c.v);
  const qh = halfToFloat(halves(Array.from(c.q)));
  const out = new Float64Array(span * hd);
  for (let j = 0; j < span; j++) {
    const s = new Float64Array(nPos);
    for (let p = 0; p < nPos; p++) {
      let d = 0;
      for (let i = 0; i < hd; i++) d += qh[j * hd + i] * kf[p * hd + i];
      s[p] = d * c.scale;
    }
    const m = Math.max(...s);
    let sum = 0;
    for (let p = 0; p < nPos; p++) sum += Math.exp(s[p] - m);
    for (let p = 0; p < nPos; p++) {
      const w = Math.exp(s[p] - m) / sum;
      for (let i = 0; i < hd; i++) out[j * hd + i] += w * vf[p * hd + i];
    }
  }
  return out;
}

const cases: Array<[number, number, number, Pattern]> = [
  [64, 1, 1, 'random'],
  [64, 3, 15, 'random'],
  [64, 3, 16, 'random'],
  [64, 3, 17, 'rising'],
  [64, 8, 100, 'random'], // two full register groups of 4 heads
  [64, 5, 300, 'rising'], // a group of 4, then 1
  [64, 7, 64, 'steep'],
  [128, 1, 33, 'random'],
  [128, 3, 130, 'rising'], // groups of 2, then 1
  [128, 4, 48, 'steep'],
  [80, 2, 40, 'random'], // a head size the blocked kernel leaves to the loop
];

describe.each(paths)('attention over a F16 cache, %s path', (path) => {
  test.each(cases)('hd %i, %i heads, %i positions, %s scores: blocked = loop, bit for bit', (hd, span, nPos, pattern) => {
    const c = makeCase(hd, span, nPos, pattern, hd * 1000 + span * 100 + nPos);
    const loop = k.attendF16(path, false, hd, span, nPos, c.q, c.k, c.v, c.scale);
    const blocked = k.attendF16(path, true, hd, span, nPos, c.q, c.k, c.v, c.scale);
    expect(Buffer.from(blocked.buffer).equals(Buffer.from(loop.buffer))).toBe(true);

    // and it is attention: sums / S match a float64 softmax to half precision
    const ref = softmaxReference(hd, span, nPos, c);
    const n = span * hd;
    let worst = 0;
    for (let j = 0; j < span; j++) {
      const S = blocked[n + span + j];
      expect(S).toBeGreaterThanOrEqual(1); // the maximum's own weight is 1
      for (let i = 0; i < hd; i++) worst = Math.max(worst, Math.abs(blocked[j * hd + i] / S - ref[j * hd + i]));
    }
    expect(worst).toBeLessThan(0.05);
  });
});

describe('exp of 16 floats with the bits of std::exp', () => {
  const vectorPaths = paths.filter((p) => p === 'avx512');
  test.each(vectorPaths)('%s: every 61st float, and every float in the ranges attention uses near 0 and where expf underflows', (path) => {
    expect(k.expSweep(path, 0, 61, Math.floor(2 ** 32 / 61))).toEqual([0, -1]);
    // -0 down to -0.5, every 7th bit pattern (weights close to 1)
    expect(k.expSweep(path, 0x80000000, 7, Math.floor(0x3f000000 / 7))).toEqual([0, -1]);
    // -87 .. -104.5: glibc's special-case branches and subnormal results
    const from = new Uint32Array(Float32Array.of(-87).buffer)[0];
    const to = new Uint32Array(Float32Array.of(-104.5).buffer)[0];
    expect(k.expSweep(path, from, 1, to - from + 1)).toEqual([0, -1]);
    // NaN and infinities
    for (const bits of [0x7fc00000, 0xff800000, 0x7f800000]) expect(k.expSweep(path, bits, 1, 1)).toEqual([0, -1]);
  });
});
