// The native GGUF reader on real files: llama.cpp-produced reference models,
// the bundled tiny model and vocabulary-only files.
import * as path from 'node:path';
import {
  getBool,
  getNumber,
  getNumericArray,
  getString,
  getStringArray,
  readGgufMetadata,
} from '../server/src/engine/gguf';

const FIX = path.join(__dirname, 'fixtures');

// Bytes per block / elements per block, from ggml's type table (independent of the reader).
const TYPE_SIZE: Record<string, [number, number]> = {
  f32: [4, 1],
  f16: [2, 1],
  q4_0: [18, 32],
  q8_0: [34, 32],
  q4_K: [144, 256],
  q6_K: [210, 256],
};

function expectedTensors(arch: 'llama' | 'qwen2', types: (name: string) => string) {
  const [embd, kv, ffn, vocab, layers] = [256, 64, 768, 2048, 2];
  const out: Array<[string, string, number[]]> = [['token_embd.weight', types('token_embd'), [embd, vocab]]];
  for (let i = 0; i < layers; i++) {
    const b = `blk.${i}.`;
    out.push([b + 'attn_norm.weight', 'f32', [embd]]);
    out.push([b + 'attn_q.weight', types('attn_q'), [embd, embd]]);
    out.push([b + 'attn_k.weight', types('attn_k'), [embd, kv]]);
    out.push([b + 'attn_v.weight', types('attn_v'), [embd, kv]]);
    out.push([b + 'attn_output.weight', types('attn_output'), [embd, embd]]);
    if (arch === 'qwen2') {
      out.push([b + 'attn_q.bias', 'f32', [embd]]);
      out.push([b + 'attn_k.bias', 'f32', [kv]]);
      out.push([b + 'attn_v.bias', 'f32', [kv]]);
    }
    out.push([b + 'ffn_norm.weight', 'f32', [embd]]);
    out.push([b + 'ffn_gate.weight', types('ffn_gate'), [embd, ffn]]);
    out.push([b + 'ffn_up.weight', types('ffn_up'), [embd, ffn]]);
    out.push([b + 'ffn_down.weight', types('ffn_down'), [ffn, embd]]);
  }
  out.push(['output_norm.weight', 'f32', [embd]]);
  out.push(['output.weight', types('output'), [embd, vocab]]);
  return out;
}

const MINI = [
  { file: 'mini-llama-f16.gguf', arch: 'llama', fileType: 1, types: () => 'f16' },
  { file: 'mini-llama-q8_0.gguf', arch: 'llama', fileType: 7, types: () => 'q8_0' },
  { file: 'mini-llama-q4_0.gguf', arch: 'llama', fileType: 2, types: () => 'q4_0' },
  {
    file: 'mini-llama-q4_k_m.gguf',
    arch: 'llama',
    fileType: 15,
    types: (n: string) => (['attn_v', 'ffn_down', 'output'].includes(n) ? 'q6_K' : 'q4_K'),
  },
  { file: 'mini-qwen2-q8_0.gguf', arch: 'qwen2', fileType: 7, types: () => 'q8_0' },
] as const;

describe('reference mini models', () => {
  for (const m of MINI) {
    test(m.file, () => {
      const md = readGgufMetadata(path.join(FIX, 'reference', m.file));
      expect(md.version).toBe(3);
      expect(md.alignment).toBe(32);
      const a = m.arch;
      expect(getString(md, 'general.architecture')).toBe(a);
      expect(getNumber(md, 'general.file_type')).toBe(m.fileType);
      expect(md.valueTypes['general.file_type']).toBe('uint32');
      expect(getNumber(md, `${a}.context_length`)).toBe(1024);
      expect(getNumber(md, `${a}.embedding_length`)).toBe(256);
      expect(getNumber(md, `${a}.block_count`)).toBe(2);
      expect(getNumber(md, `${a}.feed_forward_length`)).toBe(768);
      expect(getNumber(md, `${a}.attention.head_count`)).toBe(8);
      expect(getNumber(md, `${a}.attention.head_count_kv`)).toBe(2);
      expect(getNumber(md, `${a}.rope.freq_base`)).toBe(a === 'qwen2' ? 1e6 : 1e4);
      expect(getNumber(md, `${a}.attention.layer_norm_rms_epsilon`)).toBeCloseTo(1e-5, 9);
      expect(md.valueTypes[`${a}.attention.layer_norm_rms_epsilon`]).toBe('float32');
      const tokens = getStringArray(md, 'tokenizer.ggml.tokens');
      expect(tokens.length).toBe(2048);
      expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
      // (the addon's typed arrays come from Node's realm, not jest's: compare by name)
      expect(getNumericArray(md, 'tokenizer.ggml.scores').constructor.name).toBe('Float32Array');
      const tt = getNumericArray(md, 'tokenizer.ggml.token_type');
      expect(tt.constructor.name).toBe('Int32Array');
      expect(Array.from(tt.slice(0, 4) as Int32Array)).toEqual([2, 3, 3, 6]);
      expect(getBool(md, 'tokenizer.ggml.add_bos_token')).toBe(true);
      expect(getNumber(md, 'tokenizer.ggml.bos_token_id')).toBe(1);

      const want = expectedTensors(m.arch, m.types);
      expect(md.tensors.map((t) => [t.name, t.type, t.dims])).toEqual(want);
      // Extents: size from the type table, aligned, inside the file, packed in order.
      let end = md.dataOffset;
      for (const t of md.tensors) {
        const [bytes, block] = TYPE_SIZE[t.type];
        const n = t.dims.reduce((x, y) => x * y, 1);
        expect(t.nbytes).toBe((n / block) * bytes);
        expect((t.offset - md.dataOffset) % 32).toBe(0);
        expect(t.offset).toBeGreaterThanOrEqual(end);
        end = t.offset + t.nbytes;
      }
      expect(end).toBe(md.fileSize);
    });
  }
});

test('the bundled tiny Llama-2 model', () => {
  const md = readGgufMetadata(path.join(FIX, 'models', 'llama-2-tiny-random.gguf'));
  expect(md.version).toBe(3);
  expect(md.fileSize).toBe(1750560);
  expect(getString(md, 'general.name')).toBe('LLaMA v2');
  expect(getNumber(md, 'llama.embedding_length')).toBe(8);
  expect(getNumber(md, 'llama.context_length')).toBe(4096);
  expect(getStringArray(md, 'tokenizer.ggml.tokens').length).toBe(32000);
  expect(md.tensors.length).toBe(12);
  const embd = md.tensors.find((t) => t.name === 'token_embd.weight')!;
  expect(embd).toMatchObject({ type: 'f16', dims: [8, 32000], nbytes: 512000, offset: md.dataOffset });
  expect(md.tensors.find((t) => t.name === 'output_norm.weight')).toMatchObject({ type: 'f32', dims: [8] });
});

describe('vocabulary-only files', () => {
  test('gpt-2 (BPE with merges)', () => {
    const md = readGgufMetadata(path.join(FIX, 'tokenizer', 'ggml-vocab-gpt-2.gguf'));
    expect(md.tensors).toEqual([]);
    expect(getString(md, 'tokenizer.ggml.model')).toBe('gpt2');
    const tokens = getStringArray(md, 'tokenizer.ggml.tokens');
    expect(tokens.length).toBe(50257);
    expect(tokens[0]).toBe('!');
    expect(tokens[50256]).toBe('<|endoftext|>');
    const merges = getStringArray(md, 'tokenizer.ggml.merges');
    expect(merges.length).toBe(50000);
    expect(merges[0]).toBe('Ġ t');
    expect(getNumber(md, 'tokenizer.ggml.eos_token_id')).toBe(50256);
    expect(md.valueTypes['tokenizer.ggml.merges']).toBe('array<string>');
  });

  test('llama-spm (SentencePiece)', () => {
    const md = readGgufMetadata(path.join(FIX, 'tokenizer', 'ggml-vocab-llama-spm.gguf'));
    expect(md.tensors).toEqual([]);
    expect(getString(md, 'tokenizer.ggml.model')).toBe('llama');
    const tokens = getStringArray(md, 'tokenizer.ggml.tokens');
    expect(tokens.length).toBe(32000);
    expect(tokens[29871]).toBe('▁');
    const scores = getNumericArray(md, 'tokenizer.ggml.scores') as Float32Array;
    expect(scores.length).toBe(32000);
    expect(scores.some((s) => s !== 0)).toBe(true);
    expect(getNumber(md, 'llama.vocab_size')).toBe(32000);
  });
});

describe('typed getters', () => {
  const md = readGgufMetadata(path.join(FIX, 'reference', 'mini-llama-q8_0.gguf'));
  test('defaults apply only when the key is absent', () => {
    expect(getNumber(md, 'llama.no_such_key', 7)).toBe(7);
    expect(getString(md, 'general.architecture', 'x')).toBe('llama');
  });
  test('missing and mistyped keys give GGUF_INVALID naming the key', () => {
    expect(() => getNumber(md, 'llama.no_such_key')).toThrow(/'llama.no_such_key' is missing/);
    expect(() => getString(md, 'llama.block_count')).toThrow(
      expect.objectContaining({ code: 'GGUF_INVALID', message: expect.stringMatching(/block_count.*expected a string/) }),
    );
    expect(() => getStringArray(md, 'tokenizer.ggml.scores')).toThrow(/expected an array of strings/);
  });
});

test('a missing file is IO_ERROR', () => {
  expect(() => readGgufMetadata(path.join(FIX, 'no-such-file.gguf'))).toThrow(
    expect.objectContaining({ code: 'IO_ERROR', message: expect.stringMatching(/no-such-file.gguf: cannot open/) }),
  );
  expect(() => readGgufMetadata(FIX)).toThrow(expect.objectContaining({ code: 'IO_ERROR' }));
});
