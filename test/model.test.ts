// Model loading: configuration from metadata, tensor type counts, kernel path,
// and coded errors for files the engine cannot run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomTensorSource, tensorSeed } from '../server/src/engine/gguf-random';
import { GgufWriter } from '../server/src/engine/gguf-writer';
import { Model } from '../server/src/engine/model';
import { planTensors, PlannedTensor } from '../scripts/make-model';
import { REFERENCE_DIR, TINY_MODEL } from './model-helpers';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-model-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface TinySpec {
  arch?: string;
  metadata?: Record<string, [string, unknown]>; // extra / replaced keys: [type, value]
  omit?: string[]; // metadata keys to leave out
  tensors?: (plan: PlannedTensor[]) => PlannedTensor[];
}

/** A tiny llama-shaped model (embd 64, 1 layer, 4 heads, 2 KV heads, FFN 96, vocab 256). */
function writeTiny(name: string, spec: TinySpec = {}): string {
  const arch = spec.arch ?? 'llama';
  let plan = planTensors({
    arch: arch === 'qwen2' ? 'qwen2' : 'llama', embd: 64, layers: 1, heads: 4, kvHeads: 2, ffn: 96, type: 'q8_0',
    vocabSize: 256, context: 128, ropeBase: 10000, rmsEps: 1e-5, tied: false, seed: 1, std: 0.1,
  });
  if (spec.tensors) plan = spec.tensors(plan);
  const w = new GgufWriter();
  const keys: Record<string, [string, unknown]> = {
    'general.architecture': ['string', arch],
    [`${arch}.context_length`]: ['uint32', 128],
    [`${arch}.embedding_length`]: ['uint32', 64],
    [`${arch}.block_count`]: ['uint32', 1],
    [`${arch}.feed_forward_length`]: ['uint32', 96],
    [`${arch}.attention.head_count`]: ['uint32', 4],
    [`${arch}.attention.head_count_kv`]: ['uint32', 2],
    [`${arch}.attention.layer_norm_rms_epsilon`]: ['float32', 1e-5],
    ...spec.metadata,
  };
  for (const [k, [type, value]] of Object.entries(keys)) if (!spec.omit?.includes(k)) w.set(k, type, value);
  for (const t of plan) w.addTensor(t.name, t.type, t.dims, randomTensorSource(t.type, t.dims, { seed: tensorSeed(1, t.name), std: 0.1, mean: t.mean }));
  const file = path.join(dir, name);
  w.write(file);
  return file;
}

function loadError(file: string): { code?: string; message: string } {
  try {
    Model.load(file).close();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error(`${file} loaded`);
}

describe('configuration from metadata', () => {
  test('the bundled tiny llama', () => {
    const m = Model.load(TINY_MODEL);
    expect(m.info).toMatchObject({
      architecture: 'llama', vocabSize: 32000, embeddingLength: 8, blockCount: 1, headCount: 2, headCountKv: 2,
      headDim: 4, ropeType: 'normal', ropeDimensionCount: 4, ropeBase: 10000,
    });
    expect(m.info.tensorTypes).toEqual({ f16: expect.any(Number), f32: expect.any(Number) });
    expect(Object.values(m.info.tensorTypes).reduce((a, b) => a + b)).toBeGreaterThanOrEqual(12);
    expect(['scalar', 'avx2', 'avx512', 'neon']).toContain(m.info.cpuPath);
    expect(m.info.physicalCores).toBeGreaterThanOrEqual(1);
    expect(m.info.fileSize).toBe(fs.statSync(TINY_MODEL).size);
    m.close();
  });

  test('GQA llama with an untied output, and qwen2 with neox RoPE', () => {
    const llama = Model.load(path.join(REFERENCE_DIR, 'mini-llama-q4_k_m.gguf'));
    expect(llama.info).toMatchObject({
      architecture: 'llama', embeddingLength: 256, blockCount: 2, headCount: 8, headCountKv: 2, headDim: 32,
      feedForwardLength: 768, vocabSize: 2048, contextLength: 1024, tiedOutput: false, ropeType: 'normal',
    });
    expect(llama.info.tensorTypes).toEqual({ f32: 5, q4_K: expect.any(Number), q6_K: expect.any(Number) });
    expect(llama.info.rmsEpsilon).toBeCloseTo(1e-5, 9);
    llama.close();
    const qwen = Model.load(path.join(REFERENCE_DIR, 'mini-qwen2-q8_0.gguf'));
    expect(qwen.info).toMatchObject({ architecture: 'qwen2', ropeType: 'neox', ropeBase: 1e6, headCountKv: 2 });
    qwen.close();
  });

  test('defaults: no head_count_kv = head_count, no rope keys = head dim and base 10000; tied output', () => {
    const file = writeTiny('defaults.gguf', {
      omit: ['llama.attention.head_count_kv'],
      tensors: (plan) =>
        plan
          .filter((t) => t.name !== 'output.weight')
          .map((t) => (/attn_[kv]\.weight/.test(t.name) ? { ...t, dims: [64, 64] } : t)),
    });
    const m = Model.load(file);
    expect(m.info).toMatchObject({ headCountKv: 4, headDim: 16, ropeDimensionCount: 16, ropeBase: 10000, tiedOutput: true, vocabSize: 256 });
    // it runs: tied output means the LM head reads token_embd
    const s = m.createSession({ maxSequences: 1, contextLength: 16, threads: 1 });
    const batch = { seq: Int32Array.of(0), token: Int32Array.of(5), pos: Int32Array.of(0), logits: Uint8Array.of(1), length: 1 };
    expect(s.decode(batch).length).toBe(256);
    s.close();
    m.close();
  });

  test('attention.key_length sets the head size', () => {
    const file = writeTiny('keylen.gguf', {
      metadata: { 'llama.attention.key_length': ['uint32', 32], 'llama.attention.value_length': ['uint32', 32] },
      tensors: (plan) =>
        plan.map((t) => {
          if (t.name.endsWith('attn_q.weight')) return { ...t, dims: [64, 128] };
          if (/attn_[kv]\.weight/.test(t.name)) return { ...t, dims: [64, 64] };
          if (t.name.endsWith('attn_output.weight')) return { ...t, dims: [128, 64] };
          return t;
        }),
    });
    const m = Model.load(file);
    expect(m.info).toMatchObject({ headDim: 32, ropeDimensionCount: 32 });
    m.close();
  });
});

test('prefetch and lock load options', () => {
  const file = path.join(REFERENCE_DIR, 'mini-llama-q4_0.gguf');
  const m = Model.load(file, { prefetch: true });
  expect(m.info.architecture).toBe('llama');
  m.close();
  // mlock of 1.5 MB: allowed under the usual 8 MB RLIMIT_MEMLOCK; where the
  // limit is lower it must fail cleanly, saying why.
  try {
    Model.load(file, { lock: true }).close();
  } catch (e) {
    expect((e as { code?: string }).code).toBe('IO_ERROR');
    expect((e as Error).message).toMatch(/mlock .* RLIMIT_MEMLOCK/);
  }
});

describe('files the engine refuses, with a code and a message naming the problem', () => {
  test('unknown architecture: MODEL_UNSUPPORTED', () => {
    const e = loadError(writeTiny('gpt2.gguf', { arch: 'gpt2' }));
    expect(e.code).toBe('MODEL_UNSUPPORTED');
    expect(e.message).toMatch(/architecture 'gpt2'/);
  });

  test('missing tensor: GGUF_INVALID naming it and its shape', () => {
    const e = loadError(writeTiny('missing.gguf', { tensors: (p) => p.filter((t) => t.name !== 'blk.0.ffn_up.weight') }));
    expect(e.code).toBe('GGUF_INVALID');
    expect(e.message).toMatch(/blk\.0\.ffn_up\.weight is missing \(expected shape \[64, 96\]\)/);
  });

  test('mis-shaped tensor: GGUF_INVALID with both shapes', () => {
    const e = loadError(writeTiny('shape.gguf', { tensors: (p) => p.map((t) => (t.name === 'blk.0.attn_k.weight' ? { ...t, dims: [64, 64] } : t)) }));
    expect(e.code).toBe('GGUF_INVALID');
    expect(e.message).toMatch(/blk\.0\.attn_k\.weight has shape \[64, 64\], expected \[64, 32\]/);
  });

  test('required metadata missing: GGUF_INVALID naming the key', () => {
    const e = loadError(writeTiny('nokey.gguf', { omit: ['llama.feed_forward_length'] }));
    expect(e.code).toBe('GGUF_INVALID');
    expect(e.message).toMatch(/llama\.feed_forward_length/);
  });

  test('head count not a multiple of the KV head count: GGUF_INVALID', () => {
    const e = loadError(writeTiny('gqa.gguf', { metadata: { 'llama.attention.head_count_kv': ['uint32', 3] } }));
    expect(e.code).toBe('GGUF_INVALID');
    expect(e.message).toMatch(/head_count_kv/);
  });

  test('a tensor type without kernels (iq4_nl): MODEL_UNSUPPORTED naming tensor and type', () => {
    const file = writeTiny('iq4.gguf', { tensors: (p) => p.map((t) => (t.name === 'blk.0.ffn_gate.weight' ? { ...t, type: 'q4_0' } : t)) });
    // Rewrite that tensor's type id in the header: q4_0 (2) -> iq4_nl (20), same block size and bytes.
    const buf = fs.readFileSync(file);
    const name = Buffer.from('blk.0.ffn_gate.weight');
    const at = buf.indexOf(name) + name.length; // then: n_dims u32, ne u64 x n_dims, type u32
    const nDims = buf.readUInt32LE(at);
    const typeAt = at + 4 + 8 * nDims;
    expect(buf.readUInt32LE(typeAt)).toBe(2);
    buf.writeUInt32LE(20, typeAt);
    fs.writeFileSync(file, buf);
    const e = loadError(file);
    expect(e.code).toBe('MODEL_UNSUPPORTED');
    expect(e.message).toMatch(/blk\.0\.ffn_gate\.weight has type iq4_nl/);
    expect(e.message).toMatch(/supported: f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K, bf16\)/);
  });

  test('unsupported RoPE scaling: MODEL_UNSUPPORTED', () => {
    const e = loadError(writeTiny('yarn.gguf', { metadata: { 'llama.rope.scaling.type': ['string', 'yarn'], 'llama.rope.scaling.factor': ['float32', 4] } }));
    expect(e.code).toBe('MODEL_UNSUPPORTED');
    expect(e.message).toMatch(/yarn/);
  });

  test('a file that does not exist: IO_ERROR', () => {
    expect(loadError(path.join(dir, 'nope.gguf')).code).toBe('IO_ERROR');
  });

  test('a bad kernel path: INVALID_ARGUMENT', () => {
    let code: string | undefined;
    try {
      Model.load(TINY_MODEL, { cpu: 'sparc' as 'scalar' });
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe('INVALID_ARGUMENT');
  });
});
