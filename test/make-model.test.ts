// make-model writes files laid out like llama.cpp's (checked against the
// reference files llama.cpp ran), with the documented type mix and fallbacks.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getNumber, getStringArray, readGgufMetadata } from '../server/src/engine/gguf';
import { compatibleType, makeModel, MakeModelOptions, parseMakeModelArgs } from '../scripts/make-model';

const FIX = path.join(__dirname, 'fixtures');
const SPM = path.join(FIX, 'tokenizer', 'ggml-vocab-llama-spm.gguf');
const GPT2 = path.join(FIX, 'tokenizer', 'ggml-vocab-gpt-2.gguf');
const ROOT = path.join(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'make-model-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// The reference files' shape: llama/qwen2, embd 256, 2 layers, 8 heads, 2 KV heads, FFN 768, vocab 2048.
function mini(arch: 'llama' | 'qwen2', type: MakeModelOptions['type'], out: string): MakeModelOptions {
  return {
    arch, type, out, embd: 256, layers: 2, heads: 8, kvHeads: 2, ffn: 768, vocabFrom: SPM, vocabSize: 2048,
    context: 1024, ropeBase: arch === 'qwen2' ? 1e6 : 1e4, rmsEps: 1e-5, tied: false, seed: 1, std: 0.1,
  };
}

describe('same layout as the llama.cpp reference files', () => {
  const cases: Array<['llama' | 'qwen2', MakeModelOptions['type'], string]> = [
    ['llama', 'f16', 'mini-llama-f16.gguf'],
    ['llama', 'q8_0', 'mini-llama-q8_0.gguf'],
    ['llama', 'q4_0', 'mini-llama-q4_0.gguf'],
    ['llama', 'q4_k_m', 'mini-llama-q4_k_m.gguf'],
    ['qwen2', 'q8_0', 'mini-qwen2-q8_0.gguf'],
  ];
  for (const [arch, type, refName] of cases) {
    test(`${arch} ${type} vs ${refName}`, () => {
      const out = path.join(dir, `${arch}-${type}.gguf`);
      makeModel(mini(arch, type, out));
      const md = readGgufMetadata(out);
      const ref = readGgufMetadata(path.join(FIX, 'reference', refName));
      // every tensor: same name, type, shape and place in the data section
      // (the header differs: general.name and the added {arch}.vocab_size)
      const layout = (m: typeof md) =>
        m.tensors.map((t) => ({ ...t, offset: t.offset - m.dataOffset }));
      expect(layout(md)).toEqual(layout(ref));
      expect(md.fileSize - md.dataOffset).toBe(ref.fileSize - ref.dataOffset);
      // every reference key is present with the same type and value (but the name)
      for (const [k, v] of Object.entries(ref.metadata)) {
        expect([k, md.valueTypes[k]]).toEqual([k, ref.valueTypes[k]]);
        if (k !== 'general.name') expect([k, md.metadata[k]]).toEqual([k, v]);
      }
      expect(getNumber(md, `${arch}.vocab_size`)).toBe(2048);
    });
  }

  test('norm weights are F32 near 1', () => {
    const out = path.join(dir, 'llama-q8_0.gguf');
    if (!fs.existsSync(out)) makeModel(mini('llama', 'q8_0', out));
    const md = readGgufMetadata(out);
    const t = md.tensors.find((x) => x.name === 'blk.1.ffn_norm.weight')!;
    const buf = fs.readFileSync(out).subarray(t.offset, t.offset + t.nbytes);
    const v = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    expect(mean).toBeGreaterThan(0.97);
    expect(mean).toBeLessThan(1.03);
  });
});

describe('row-length fallbacks and tied output', () => {
  test('embd 576 (not a multiple of 256): K-quants fall back as llama.cpp does, Q4_K -> Q5_0 and Q6_K -> Q8_0', () => {
    const out = path.join(dir, 'smol-q4km.gguf');
    const logs: string[] = [];
    makeModel(
      { ...mini('llama', 'q4_k_m', out), embd: 576, heads: 9, kvHeads: 3, ffn: 1536, layers: 1, vocabSize: 512 },
      (m) => logs.push(m),
    );
    const types = Object.fromEntries(readGgufMetadata(out).tensors.map((t) => [t.name, [t.type, t.dims]]));
    expect(types['token_embd.weight']).toEqual(['q5_0', [576, 512]]);
    expect(types['blk.0.attn_q.weight']).toEqual(['q5_0', [576, 576]]);
    expect(types['blk.0.attn_k.weight']).toEqual(['q5_0', [576, 192]]);
    expect(types['blk.0.ffn_up.weight']).toEqual(['q5_0', [576, 1536]]);
    expect(types['blk.0.attn_v.weight']).toEqual(['q8_0', [576, 192]]); // wanted Q6_K
    expect(types['blk.0.ffn_down.weight']).toEqual(['q6_K', [1536, 576]]); // 1536 = 6 * 256: no fallback
    expect(types['output.weight']).toEqual(['q8_0', [576, 512]]);
    expect(logs.join('\n')).toMatch(/fallback: .*q4_K -> q5_0 \(ne\[0\] = 576\)/);
    expect(logs.join('\n')).toMatch(/fallback: .*q6_K -> q8_0 \(ne\[0\] = 576\)/);
  });

  test('rows a multiple of 32 but not of 256 keep the fallback; rows of neither go to F16', () => {
    expect(compatibleType('q4_K', 896)).toBe('q5_0'); // Qwen2.5-0.5B's embd
    expect(compatibleType('q6_K', 896)).toBe('q8_0');
    expect(compatibleType('q4_K', 4864)).toBe('q4_K'); // 19 * 256
    expect(compatibleType('q4_K', 40)).toBe('f16');
    expect(compatibleType('q6_K', 40)).toBe('f16');
    expect(compatibleType('q5_0', 40)).toBe('f16');
    expect(compatibleType('q5_0', 96)).toBe('q5_0');
    expect(compatibleType('q5_K', 576)).toBe('q5_1');
    expect(compatibleType('q5_K', 40)).toBe('f16');
  });

  test('q5_k_m: Q5_K with Q6_K for attn_v, ffn_down and output; embd 576 falls back to Q5_1 / Q8_0', () => {
    const out = path.join(dir, 'smol-q5km.gguf');
    makeModel({ ...mini('llama', 'q5_k_m', out), embd: 576, heads: 9, kvHeads: 3, ffn: 1536, layers: 1, vocabSize: 512 });
    const md = readGgufMetadata(out);
    expect(md.metadata['general.file_type']).toBe(17);
    const types = Object.fromEntries(md.tensors.map((t) => [t.name, t.type]));
    expect(types).toMatchObject({
      'token_embd.weight': 'q5_1', 'blk.0.attn_q.weight': 'q5_1', 'blk.0.attn_v.weight': 'q8_0',
      'blk.0.ffn_gate.weight': 'q5_1', 'blk.0.ffn_down.weight': 'q6_K', 'output.weight': 'q8_0',
    });
    const plain = path.join(dir, 'q5km-256.gguf');
    makeModel({ ...mini('llama', 'q5_k_m', plain), layers: 1 });
    const t256 = Object.fromEntries(readGgufMetadata(plain).tensors.map((t) => [t.name, t.type]));
    expect(t256).toMatchObject({ 'token_embd.weight': 'q5_K', 'blk.0.attn_k.weight': 'q5_K', 'blk.0.attn_v.weight': 'q6_K' });
  });

  test('q4_1, q5_0, q5_1: every matrix of that type, llama.cpp file type ids', () => {
    for (const [type, id] of [['q4_1', 3], ['q5_0', 8], ['q5_1', 9]] as const) {
      const f = path.join(dir, `all-${type}.gguf`);
      makeModel({ ...mini('llama', type, f), layers: 1, vocabSize: 300 });
      const m = readGgufMetadata(f);
      expect(m.metadata['general.file_type']).toBe(id);
      for (const t of m.tensors) expect([t.name, t.type]).toEqual([t.name, t.dims.length === 2 ? type : 'f32']);
    }
  });

  test('tied output: no output.weight, token_embd is the output (Q6_K in q4_k_m)', () => {
    const out = path.join(dir, 'tied.gguf');
    makeModel({ ...mini('qwen2', 'q4_k_m', out), tied: true, layers: 1 });
    const md = readGgufMetadata(out);
    expect(md.tensors.find((t) => t.name === 'output.weight')).toBeUndefined();
    expect(md.tensors.find((t) => t.name === 'token_embd.weight')).toMatchObject({ type: 'q6_K', dims: [256, 2048] });
    expect(md.tensors.find((t) => t.name === 'blk.0.attn_k.bias')).toMatchObject({ type: 'f32', dims: [64] });
  });

  test('tiny rows (ne[0] = 8) fall back to F16; f32 and bf16 files', () => {
    const out = path.join(dir, 'tiny.gguf');
    makeModel({ ...mini('llama', 'q8_0', out), embd: 8, heads: 2, kvHeads: 2, ffn: 32, layers: 1, vocabSize: 300 });
    const md = readGgufMetadata(out);
    for (const t of md.tensors.filter((x) => x.dims.length === 2))
      expect([t.name, t.type]).toEqual([t.name, t.dims[0] === 8 ? 'f16' : 'q8_0']); // ffn_down rows: 32
    for (const type of ['f32', 'bf16'] as const) {
      const f = path.join(dir, `tiny-${type}.gguf`);
      makeModel({ ...mini('llama', type, f), layers: 1 });
      const m = readGgufMetadata(f);
      expect(m.metadata['general.file_type']).toBe(type === 'f32' ? 0 : 32);
      expect(m.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.type).toBe(type);
      expect(m.tensors.find((t) => t.name === 'blk.0.attn_norm.weight')!.type).toBe('f32');
    }
  });
});

test('vocabulary truncation keeps a consistent BPE tokenizer', () => {
  const out = path.join(dir, 'gpt2-vocab.gguf');
  const logs: string[] = [];
  makeModel({ ...mini('qwen2', 'q8_0', out), vocabFrom: GPT2, vocabSize: 1000, layers: 1 }, (m) => logs.push(m));
  const md = readGgufMetadata(out);
  const tokens = getStringArray(md, 'tokenizer.ggml.tokens');
  expect(tokens.length).toBe(1000);
  expect((md.metadata['tokenizer.ggml.token_type'] as Int32Array).length).toBe(1000);
  const vocab = new Set(tokens);
  const merges = getStringArray(md, 'tokenizer.ggml.merges');
  expect(merges.length).toBeGreaterThan(100);
  expect(merges.length).toBeLessThan(1000);
  for (const m of merges) {
    const [a, b] = m.split(' ');
    expect(vocab.has(a) && vocab.has(b) && vocab.has(a + b)).toBe(true);
  }
  // eos 50256 is past the end: dropped rather than left dangling
  expect(md.metadata['tokenizer.ggml.eos_token_id']).toBeUndefined();
  expect(logs.join('\n')).toMatch(/dropped tokenizer.ggml.eos_token_id = 50256/);
  expect(md.tensors.find((t) => t.name === 'token_embd.weight')!.dims).toEqual([256, 1000]);
  expect(md.metadata['tokenizer.ggml.model']).toBe('gpt2');
});

test('same seed, same file; another seed, other weights', () => {
  const a = path.join(dir, 'seed-a.gguf');
  const b = path.join(dir, 'seed-b.gguf');
  const c = path.join(dir, 'seed-c.gguf');
  makeModel({ ...mini('llama', 'q4_0', a), layers: 1 });
  makeModel({ ...mini('llama', 'q4_0', b), layers: 1 });
  makeModel({ ...mini('llama', 'q4_0', c), layers: 1, seed: 2 });
  expect(fs.readFileSync(a).equals(fs.readFileSync(b))).toBe(true);
  expect(fs.readFileSync(a).equals(fs.readFileSync(c))).toBe(false);
});

describe('command line', () => {
  test('parses the documented options', () => {
    const o = parseMakeModelArgs([
      '--arch', 'qwen2', '--embd', '896', '--layers', '24', '--heads', '14', '--kv-heads', '2', '--ffn', '4864',
      '--type', 'Q4_K_M', '--vocab-from', 'v.gguf', '--vocab-size=5000', '--tied', '--seed', '9', '--out', 'o.gguf',
    ]);
    expect(o).toMatchObject({
      arch: 'qwen2', embd: 896, layers: 24, heads: 14, kvHeads: 2, ffn: 4864, type: 'q4_k_m', vocabSize: 5000,
      tied: true, seed: 9, ropeBase: 1e6, context: 2048, out: 'o.gguf',
    });
    expect(() => parseMakeModelArgs(['--out', 'x'])).toThrow(/--vocab-from is required/);
    expect(() => parseMakeModelArgs(['--vocab-from', 'v', '--out', 'x', '--embd', 'big'])).toThrow(/--embd: expected an integer, got 'big'/);
    expect(() => parseMakeModelArgs(['--vocab-from', 'v', '--out', 'x', '--bogus', '1'])).toThrow(/Unknown option '--bogus'/);
  });

  test('bad shapes are refused before writing', () => {
    const out = path.join(dir, 'bad.gguf');
    expect(() => makeModel({ ...mini('llama', 'f16', out), heads: 7 })).toThrow(/--embd 256 is not a multiple of --heads 7/);
    expect(() => makeModel({ ...mini('llama', 'f16', out), kvHeads: 3 })).toThrow(/not a multiple of --kv-heads 3/);
    expect(() => makeModel({ ...mini('llama', 'f16', out), vocabSize: 99999 })).toThrow(/vocabulary has 32000 tokens/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('`tokenstream make-model` writes a model (compiled CLI)', () => {
    const out = path.join(dir, 'cli.gguf');
    const r = spawnSync(
      process.execPath,
      [path.join(ROOT, 'bin', 'tokenstream.js'), 'make-model', '--vocab-from', SPM, '--vocab-size', '512',
        '--embd', '64', '--layers', '1', '--heads', '4', '--kv-heads', '2', '--ffn', '128', '--type', 'q8_0', '--out', out],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/wrote \d+ bytes/);
    expect(readGgufMetadata(out).tensors.length).toBe(12);
    const bad = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'tokenstream.js'), 'make-model', '--out', out], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--vocab-from is required/);
  });
});
