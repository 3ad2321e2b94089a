// The native sampler (addon.sampling.Sampler) against a float64 TypeScript
// reimplementation of the same chain, on every CPU path this machine runs.
import { loadAddon } from '../server/src/engine/addon';
import type { SamplingConfig, SampledToken } from '../server/src/engine/types';
import { rng } from './helpers/random';

const addon = loadAddon();
const { Sampler, bestCpuPath } = addon.sampling;

interface NativeSampler {
  reset(config: Partial<SamplingConfig>, history?: Int32Array): void;
  sample(logits: Float32Array, row?: number): SampledToken;
  accept(token: number): void;
  readonly cpuPath: string;
}

const ALL_PATHS = ['scalar', 'avx2', 'avx512'];
const PATHS = ALL_PATHS.slice(0, ALL_PATHS.indexOf(bestCpuPath()) + 1);

const BASE: SamplingConfig = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
  seed: 1,
  topLogprobs: 0,
};

function make(vocab: number, path: string, maxHistory = 256, maxTop = 64): NativeSampler {
  const s = new Sampler(vocab, maxHistory, maxTop, path) as NativeSampler;
  expect(s.cpuPath).toBe(path);
  return s;
}

function randomLogits(n: number, seed: number, spread = 4): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    // roughly normal: sum of uniforms
    out[i] = ((r() + r() + r() + r() - 2) * spread) as number;
  }
  return out;
}

// ---------------------------------------------------------------- reference
function penalise(logits: Float32Array, history: number[], c: SamplingConfig): Float64Array {
  const out = Float64Array.from(logits);
  const n = c.penaltyLastN < 0 ? history.length : Math.min(c.penaltyLastN, history.length);
  const counts = new Map<number, number>();
  for (const t of history.slice(history.length - n)) counts.set(t, (counts.get(t) ?? 0) + 1);
  for (const [t, k] of counts) {
    let l = out[t];
    l = l <= 0 ? l * c.repetitionPenalty : l / c.repetitionPenalty;
    out[t] = l - k * c.frequencyPenalty - c.presencePenalty;
  }
  return out;
}

function logSoftmax(l: Float64Array): Float64Array {
  let m = -Infinity;
  for (const v of l) m = Math.max(m, v);
  let s = 0;
  for (const v of l) s += Math.exp(v - m);
  const z = m + Math.log(s);
  return l.map((v) => v - z);
}

function ranking(l: Float64Array): number[] {
  return [...l.keys()].sort((a, b) => l[b] - l[a] || a - b);
}

/** Tokens the chain may return; `slack` widens each cut a little (float32 vs float64). */
function allowed(l: Float64Array, c: SamplingConfig, slack = 1e-4): Set<number> {
  let keep = ranking(l);
  const m = l[keep[0]];
  if (c.topK > 0 && c.topK < keep.length) keep = keep.slice(0, c.topK);
  if (c.topP < 1) {
    const w = keep.map((i) => Math.exp(l[i] - m));
    const total = w.reduce((a, b) => a + b, 0);
    let cum = 0;
    let n = keep.length;
    for (let j = 0; j < w.length; j++) {
      cum += w[j];
      if (cum >= Math.min(1, c.topP + slack) * total) {
        n = j + 1;
        break;
      }
    }
    keep = keep.slice(0, n);
  }
  if (c.minP > 0) keep = keep.filter((i) => l[i] >= m + Math.log(c.minP) - slack);
  return new Set(keep);
}

// ---------------------------------------------------------------- tests
describe.each(PATHS)('native sampler, %s path', (path) => {
  test('temperature 0 returns the argmax (first index on ties), with its logprob', () => {
    const s = make(1000, path);
    for (let k = 0; k < 20; k++) {
      const logits = randomLogits(1000, 100 + k);
      if (k === 3) logits[777] = logits[5] = 50; // tie: the lower id wins
      s.reset({ ...BASE, temperature: 0, seed: k });
      const r = s.sample(logits);
      const ref = ranking(Float64Array.from(logits))[0];
      expect(r.token).toBe(ref);
      expect(r.logprob).toBeCloseTo(logSoftmax(Float64Array.from(logits))[ref], 5);
    }
  });

  test('top-k 1 is greedy at any temperature', () => {
    const s = make(5000, path);
    for (let k = 0; k < 10; k++) {
      const logits = randomLogits(5000, 200 + k, 0.5);
      s.reset({ ...BASE, temperature: 3 + k, topK: 1, seed: k });
      expect(s.sample(logits).token).toBe(ranking(Float64Array.from(logits))[0]);
    }
  });

  test('penalties change exactly the logits of the tokens in the window', () => {
    const V = 40;
    const s = make(V, path, 32, V);
    const logits = randomLogits(V, 7);
    logits[3] = -2.5; // a negative logit in the history: multiplied, not divided
    const history = [1, 3, 3, 9, 1, 3, 20, 21, 22, 23];
    const c: SamplingConfig = {
      ...BASE,
      repetitionPenalty: 1.3,
      presencePenalty: 0.5,
      frequencyPenalty: 0.25,
      penaltyLastN: 8, // tokens 1 and 3 at the start fall out of the window
      topLogprobs: V,
    };
    s.reset(c, Int32Array.from(history));
    const r = s.sample(logits);
    const pen = penalise(logits, history, c);
    // only ids in the window moved
    const moved = [...pen.keys()].filter((i) => pen[i] !== Math.fround(logits[i]));
    expect(moved.sort((a, b) => a - b)).toEqual([1, 3, 9, 20, 21, 22, 23]);
    const lp = logSoftmax(pen);
    expect(r.top).toHaveLength(V);
    const byId = new Map(r.top!.map((e) => [e.token, e.logprob]));
    for (let i = 0; i < V; i++) expect(byId.get(i)).toBeCloseTo(lp[i], 5);
    expect(r.logprob).toBeCloseTo(lp[r.token], 5);

    // accept() extends the window: the new token is penalised from the next step on
    const fresh = 30;
    s.reset({ ...c, penaltyLastN: 64 }, Int32Array.from(history));
    const before = s.sample(logits).top!.find((e) => e.token === fresh)!.logprob;
    s.accept(fresh);
    s.accept(fresh);
    const after = s.sample(logits);
    const pen2 = penalise(logits, [...history, fresh, fresh], { ...c, penaltyLastN: 64 });
    const lp2 = logSoftmax(pen2);
    expect(after.top!.find((e) => e.token === fresh)!.logprob).toBeCloseTo(lp2[fresh], 5);
    expect(lp2[fresh]).toBeLessThan(before - 0.5);
  });

  test('penaltyLastN 0 disables penalties and -1 uses the whole history buffer', () => {
    const V = 30;
    const s = make(V, path, 16, V);
    const logits = randomLogits(V, 9);
    const history = Array.from({ length: 40 }, (_, i) => i % V); // longer than the buffer
    const c = { ...BASE, repetitionPenalty: 2, topLogprobs: V };
    s.reset({ ...c, penaltyLastN: 0 }, Int32Array.from(history));
    const off = s.sample(logits).top!;
    const plain = logSoftmax(Float64Array.from(logits));
    for (const e of off) expect(e.logprob).toBeCloseTo(plain[e.token], 5);
    s.reset({ ...c, penaltyLastN: -1 }, Int32Array.from(history));
    const all = s.sample(logits).top!;
    const lp = logSoftmax(penalise(logits, history.slice(-16), { ...c, penaltyLastN: -1 }));
    for (const e of all) expect(e.logprob).toBeCloseTo(lp[e.token], 5);
  });

  test('top-N over the whole vocabulary: sorted, ties by id, probabilities sum to 1', () => {
    const V = 64;
    const s = make(V, path, 8, V);
    const logits = randomLogits(V, 11, 3);
    logits[10] = logits[50] = logits[2] = 1.25;
    s.reset({ ...BASE, temperature: 0.7, topLogprobs: V, seed: 3 });
    const r = s.sample(logits);
    const top = r.top!;
    expect(top.map((e) => e.token)).toEqual(ranking(Float64Array.from(logits)));
    for (let i = 1; i < V; i++) expect(top[i].logprob).toBeLessThanOrEqual(top[i - 1].logprob);
    const sum = top.reduce((a, e) => a + Math.exp(e.logprob), 0);
    expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
    expect(r.logprob).toBe(top.find((e) => e.token === r.token)!.logprob);
    // fewer alternatives: the same prefix
    s.reset({ ...BASE, topLogprobs: 5, seed: 3 });
    expect(s.sample(logits).top!.map((e) => e.token)).toEqual(top.slice(0, 5).map((e) => e.token));
  });

  const truncations: Array<[string, Partial<SamplingConfig>]> = [
    ['top-k 5', { topK: 5 }],
    ['top-p 0.5', { topP: 0.5 }],
    ['min-p 0.2', { minP: 0.2 }],
    ['top-k 20 + top-p 0.6', { topK: 20, topP: 0.6 }],
    ['top-p 0.8 + min-p 0.1', { topP: 0.8, minP: 0.1 }],
    ['top-k 12 + top-p 0.9 + min-p 0.05 at T 1.5', { topK: 12, topP: 0.9, minP: 0.05, temperature: 1.5 }],
  ];
  test.each(truncations)('%s never returns an excluded token and reaches every kept one', (_name, extra) => {
    const V = 300;
    const s = make(V, path);
    const logits = randomLogits(V, 21, 1.5);
    const c = { ...BASE, ...extra };
    const ok = allowed(Float64Array.from(logits), c as SamplingConfig);
    const strict = allowed(Float64Array.from(logits), c as SamplingConfig, -1e-4);
    expect(ok.size).toBeLessThan(V);
    const seen = new Set<number>();
    for (let seed = 0; seed < 400; seed++) {
      s.reset({ ...c, seed });
      for (let k = 0; k < 5; k++) {
        const t = s.sample(logits).token;
        expect(ok.has(t)).toBe(true);
        seen.add(t);
      }
    }
    // every clearly-kept token with a non-negligible chance shows up
    const lp = logSoftmax(Float64Array.from(logits));
    for (const t of strict) if (Math.exp(lp[t]) > 0.01) expect(seen.has(t)).toBe(true);
  });

  test('top-p and min-p on a 150k vocabulary keep to the nucleus', () => {
    const V = 151936;
    const s = make(V, path, 64, 8);
    for (const [seedData, spread] of [
      [31, 4],
      [32, 0.3], // nearly flat: a nucleus of tens of thousands of tokens
    ]) {
      const logits = randomLogits(V, seedData, spread);
      const l64 = Float64Array.from(logits);
      for (const extra of [{ topP: 0.9 }, { topP: 0.3 }, { minP: 0.5 }, { topP: 0.95, minP: 0.02 }, { topK: 3000, topP: 0.9 }]) {
        const c = { ...BASE, ...extra } as SamplingConfig;
        const ok = allowed(l64, c);
        for (let seed = 0; seed < 20; seed++) {
          s.reset({ ...c, seed });
          expect(ok.has(s.sample(logits).token)).toBe(true);
        }
      }
    }
  });

  test('at temperature 1 (and 2) the draws follow the softmax', () => {
    const V = 8;
    const s = make(V, path);
    const logits = Float32Array.from([0, 1, 2, 0.5, -1, 1.5, 0.25, -0.5]);
    for (const temperature of [1, 2]) {
      s.reset({ ...BASE, temperature, seed: 12345 });
      const N = 20000;
      const counts = new Array(V).fill(0);
      for (let i = 0; i < N; i++) counts[s.sample(logits).token]++;
      const p = logSoftmax(Float64Array.from(logits, (v) => v / temperature)).map(Math.exp);
      let chi2 = 0;
      for (let i = 0; i < V; i++) chi2 += (counts[i] - N * p[i]) ** 2 / (N * p[i]);
      expect(chi2).toBeLessThan(30); // df 7: the 99.99th percentile is ~29.9
    }
  });

  test('same seed gives the same sequence; another seed another', () => {
    const V = 2000;
    const s = make(V, path);
    const logits = randomLogits(V, 41, 1);
    const run = (seed: number) => {
      s.reset({ ...BASE, temperature: 1.2, topP: 0.95, repetitionPenalty: 1.1, seed });
      const out: number[] = [];
      for (let i = 0; i < 50; i++) {
        const t = s.sample(logits).token;
        s.accept(t);
        out.push(t);
      }
      return out;
    };
    const a = run(7);
    expect(run(7)).toEqual(a);
    expect(run(8)).not.toEqual(a);
    expect(new Set(a).size).toBeGreaterThan(10);
  });
});

test('every CPU path draws from the same distribution as the scalar reference', () => {
  // Paths may differ in the last bits of exp, so compare results, not draws.
  const V = 50000;
  const logits = randomLogits(V, 51, 2);
  const c = { ...BASE, topK: 40, topLogprobs: 10, repetitionPenalty: 1.2, seed: 5 };
  const results = PATHS.map((p) => {
    const s = make(V, p);
    s.reset(c, Int32Array.from([1, 2, 3]));
    return s.sample(logits);
  });
  for (const r of results.slice(1)) {
    expect(r.top!.map((e) => e.token)).toEqual(results[0].top!.map((e) => e.token));
    r.top!.forEach((e, i) => expect(e.logprob).toBeCloseTo(results[0].top![i].logprob, 5));
  }
});

describe('bad input', () => {
  const s = new Sampler(100, 16, 4) as NativeSampler;
  test.each<[string, Partial<SamplingConfig>]>([
    ['negative temperature', { temperature: -1 }],
    ['top-p above 1', { topP: 1.5 }],
    ['min-p below 0', { minP: -0.1 }],
    ['zero repetition penalty', { repetitionPenalty: 0 }],
    ['fractional top-k', { topK: 2.5 }],
    ['too many logprobs', { topLogprobs: 5 }],
    ['seed out of range', { seed: 2 ** 32 }],
    ['NaN temperature', { temperature: NaN }],
  ])('%s is refused with INVALID_ARGUMENT', (_name, extra) => {
    expect(() => s.reset({ ...BASE, ...extra })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
  test('history tokens and accepted tokens must be in the vocabulary', () => {
    expect(() => s.reset(BASE, Int32Array.from([1, 100]))).toThrow(/outside the vocabulary/);
    expect(() => s.accept(-1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
  test('logits shorter than the vocabulary are refused', () => {
    s.reset(BASE);
    expect(() => s.sample(new Float32Array(99))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => s.sample(new Float32Array(150), 1)).toThrow(/need row 1/);
    expect(s.sample(new Float32Array(200), 1).token).toBeGreaterThanOrEqual(0);
  });
  test('NaN and infinite logits give a valid token, never a crash', () => {
    const l = new Float32Array(100).fill(NaN);
    l[42] = 1;
    s.reset({ ...BASE, topP: 0.5, topK: 10 });
    expect(s.sample(l).token).toBe(42);
    l.fill(-Infinity);
    expect(s.sample(l).token).toBeGreaterThanOrEqual(0);
    l[7] = Infinity;
    expect(s.sample(l).token).toBe(7);
  });
});
