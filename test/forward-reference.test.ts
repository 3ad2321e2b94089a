// The engine's forward pass against a float64 TypeScript reference
// (test/reference/forward64.ts) on tiny generated models: every weight type,
// both architectures, both RoPE types, tied and untied output, RoPE frequency
// factors and linear scaling, grouped-query attention. F32 KV cache, so the
// only differences left are f32-vs-f64 arithmetic (and, for quantized types,
// the rare 8-bit activation rounding that falls the other way).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readGgufMetadata } from '../server/src/engine/gguf';
import { Model } from '../server/src/engine/model';
import type { CpuPathName } from '../server/src/engine/types';
import { decodeRows, seqEntries } from './model-helpers';
import { loadReference } from './reference/load';
import { TinySpec, writeTinyModel } from './reference/tiny-models';

const TOKENS = [1, 17, 200, 3, 99, 42, 250, 7];

// Shapes: K-quants need rows of a multiple of 256.
const BASE: Omit<TinySpec, 'arch' | 'type' | 'tied' | 'ropeBase' | 'seed'> = {
  embd: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 256,
};

const CASES: Array<[string, TinySpec]> = [];
for (const type of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k_m', 'q5_k_m'] as const) {
  CASES.push([`llama ${type} (normal RoPE, untied)`, { ...BASE, arch: 'llama', type, tied: false, ropeBase: 10000, seed: 11 }]);
  CASES.push([`qwen2 ${type} (neox RoPE, biases, tied)`, { ...BASE, arch: 'qwen2', type, tied: true, ropeBase: 1e6, seed: 12 }]);
}
CASES.push(['llama q8_0 with RoPE frequency factors', { ...BASE, arch: 'llama', type: 'q8_0', tied: false, ropeBase: 500000, ropeFreqs: true, seed: 13 }]);
CASES.push(['llama f16 with linear RoPE scaling, MHA', { ...BASE, kvHeads: 4, arch: 'llama', type: 'f16', tied: true, ropeBase: 10000, ropeScale: 4, seed: 14 }]);

// Every kernel path this machine has (each has its own attention kernels).
function availablePaths(file: string): CpuPathName[] {
  return (['scalar', 'avx2', 'avx512', 'neon'] as const).filter((cpu) => {
    try {
      Model.load(file, { cpu }).close();
      return true;
    } catch {
      return false;
    }
  });
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-ref-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function engineLogits(file: string, cpu: CpuPathName, kvType: 'f32' | 'f16' = 'f32'): Float32Array[] {
  const model = Model.load(file, { cpu });
  const s = model.createSession({ maxSequences: 1, contextLength: 32, maxBatch: 16, maxOutputs: 16, kvType, threads: 2 });
  // the first half as one prompt chunk (logits for every position), then one token at a time
  const half = TOKENS.length / 2;
  const rows = decodeRows(s, seqEntries(0, TOKENS.slice(0, half), 0, 'all'));
  for (let i = half; i < TOKENS.length; i++) rows.push(...decodeRows(s, seqEntries(0, [TOKENS[i]], i)));
  s.close();
  model.close();
  return rows;
}

/**
 * The engine's logits on every kernel path this machine has match the float64 reference's:
 * within 1e-3 at every position (observed: ~1e-6; a real mistake — RoPE pairing, bias, norm,
 * GQA mapping, a kernel's layout — is off by 0.1 or more at every position).
 * With quantized weights the activations are rounded to 8 bits before each matmul, and
 * now and then a value sits so close to a rounding boundary that f32 and f64 round it
 * apart (a few in 10^5; these models quantize ~10^4 values per token): that position's
 * logits, and through the KV cache often later ones', move by ~0.01-0.15 (the chaos of
 * docs/llama-cpp-parity.md). So for quantized files at least half the positions must be
 * within 1e-3 on every path and none off by 0.2 — a kernel or forward-pass error would
 * be off at every position. The seeds are fixed, so the results are too.
 */
function expectMatchesReference(file: string): void {
  const expected = loadReference(file).forward(TOKENS);
  const paths = availablePaths(file);
  expect(paths).toContain('scalar');
  const quantized = readGgufMetadata(file).tensors.some((t) => /^q/.test(t.type));
  for (const cpu of paths) {
    const got = engineLogits(file, cpu);
    expect(got).toHaveLength(TOKENS.length);
    let scale = 0;
    const worst = got.map((row, p) => {
      let w = 0;
      for (let v = 0; v < row.length; v++) {
        w = Math.max(w, Math.abs(row[v] - expected[p][v]));
        scale = Math.max(scale, Math.abs(expected[p][v]));
      }
      return w;
    });
    expect(scale).toBeGreaterThan(0.5); // the logits are not trivially small
    const off = worst.filter((w) => !(w < 1e-3));
    if (off.length > (quantized ? TOKENS.length / 2 : 0) || off.some((w) => !(w < 0.2)))
      expect([cpu, worst.map((w) => w.toExponential(1))]).toEqual([cpu, worst.map(() => '< 1e-3')]);
  }
}

test.each(CASES)('%s matches the float64 reference on every kernel path', (name, spec) => {
  expectMatchesReference(writeTinyModel(dir, name.replace(/[^a-z0-9]+/gi, '-'), spec));
});

// SmolLM2-135M's shape (embd 576, 9 heads of 64, 3 KV heads, FFN 1536, tied output): rows
// of 576 are not whole K-quant super-blocks, so a Q4_K_M file holds llama.cpp's fallbacks.
test.each([
  ['q4_k_m', 'q5_0'],
  ['q5_k_m', 'q5_1'],
] as const)('a SmolLM2-like %s model (embd 576) loads, holds the %s/Q8_0 fallbacks, and matches the reference', (type, fallback) => {
  const file = writeTinyModel(dir, `smollm2-like-${type}`, {
    embd: 576, layers: 2, heads: 9, kvHeads: 3, ffn: 1536, vocab: 256, arch: 'llama', type, tied: true,
    ropeBase: 10000, seed: 15,
  });
  const types = Object.fromEntries(readGgufMetadata(file).tensors.map((t) => [t.name, t.type]));
  expect(types).toMatchObject({
    'token_embd.weight': 'q8_0', // the tied output: Q6_K -> Q8_0
    'blk.0.attn_q.weight': fallback, // Q4_K -> Q5_0, Q5_K -> Q5_1
    'blk.0.attn_v.weight': 'q8_0',
    'blk.1.ffn_gate.weight': fallback,
    'blk.1.ffn_down.weight': 'q6_K', // rows of 1536 = 6 * 256
  });
  expectMatchesReference(file);
});

// Float weight types only: with 8-bit activations, the half roundings that fall
// the other way (f32 vs f64 scores) cascade like any other last-bit difference
// (docs/llama-cpp-parity.md).
test.each([
  ['llama f32', { ...BASE, arch: 'llama', type: 'f32', tied: false, ropeBase: 10000, seed: 21 }],
  ['qwen2 bf16', { ...BASE, arch: 'qwen2', type: 'bf16', tied: true, ropeBase: 1e6, seed: 22 }],
] as Array<[string, TinySpec]>)('%s with an F16 KV cache matches the reference\'s F16 flash attention', (name, spec) => {
  const file = writeTinyModel(dir, `f16kv-${name.replace(/[^a-z0-9]+/gi, '-')}`, spec);
  const ref = loadReference(file);
  const expected = ref.forward(TOKENS, 'f16');
  const exactAttention = ref.forward(TOKENS, 'f32');
  for (const cpu of availablePaths(file)) {
    const got = engineLogits(file, cpu, 'f16');
    let worst = 0;
    let vsExact = 0;
    got.forEach((row, p) => {
      for (let v = 0; v < row.length; v++) {
        worst = Math.max(worst, Math.abs(row[v] - expected[p][v]));
        vsExact = Math.max(vsExact, Math.abs(row[v] - exactAttention[p][v]));
      }
    });
    expect(worst).toBeLessThan(1e-3);
    expect(vsExact).toBeGreaterThan(worst); // the half-precision rounding is really there, and modelled
  }
});
