// Special tokens: parsed from the text only on request (user-defined ones always),
// BOS/EOS added as the metadata says, end-of-generation ids, clear errors.
import { readGgufMetadata } from '../server/src/engine/gguf';
import type { GgufMetadata, GgufValue } from '../server/src/engine/types';
import { Tokenizer } from '../server/src/tokenizer';
import { tokenizerFor, vocabPath, type VocabName } from './tokenizer-helpers';
import { codeOf } from './helpers/errors';

const metaCache = new Map<string, GgufMetadata>();

/** The fixture's metadata with some keys replaced (arrays copied, so each call is fresh). */
function metadataWith(name: VocabName, overrides: Record<string, GgufValue | undefined>): GgufMetadata {
  let base = metaCache.get(name);
  if (!base) {
    base = readGgufMetadata(vocabPath(name));
    metaCache.set(name, base);
  }
  const metadata: Record<string, GgufValue> = { ...base.metadata };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete metadata[k];
    else metadata[k] = v;
  }
  return { ...base, metadata };
}

describe('gpt-2: <|endoftext|> is a control token', () => {
  const tok = tokenizerFor('gpt-2');
  const eot = 50256;

  test('parsed only with parseSpecial', () => {
    expect(tok.encode('<|endoftext|>', { parseSpecial: true })).toEqual([eot]);
    const plain = tok.encode('<|endoftext|>');
    expect(plain).not.toContain(eot);
    expect(tok.decode(plain)).toBe('<|endoftext|>');
    expect(tok.encode('a<|endoftext|>b', { parseSpecial: true })).toEqual([...tok.encode('a'), eot, ...tok.encode('b')]);
  });

  test('decoded only with special', () => {
    expect(tok.decode([eot])).toBe('');
    expect(tok.decode([eot], { special: true })).toBe('<|endoftext|>');
    expect(new TextDecoder().decode(tok.tokenBytes(eot))).toBe('<|endoftext|>');
  });

  test('BOS/EOS: this vocabulary adds neither (gpt-2 pre-tokenizer, no add_*_token keys)', () => {
    expect(tok.bos).toBe(eot);
    expect(tok.eos).toBe(eot);
    expect(tok.addBos).toBe(false);
    expect(tok.addEos).toBe(false);
    expect(tok.encode('Hello', { addSpecial: true })).toEqual(tok.encode('Hello'));
  });

  test('the metadata decides: add_bos_token / add_eos_token', () => {
    const t = Tokenizer.fromMetadata(
      metadataWith('gpt-2', { 'tokenizer.ggml.add_bos_token': true, 'tokenizer.ggml.add_eos_token': true }),
    );
    expect(t.encode('Hello', { addSpecial: true })).toEqual([eot, ...tok.encode('Hello'), eot]);
    expect(t.encode('', { addSpecial: true })).toEqual([eot, eot]);
    expect(t.encode('Hello')).toEqual(tok.encode('Hello'));
  });

  test('end of generation: EOS, and <|endoftext|> by name', () => {
    expect(tok.isEndOfGeneration(eot)).toBe(true);
    expect(tok.isEndOfGeneration(0)).toBe(false);
    expect(tok.endOfGenerationIds()).toEqual([eot]);
  });
});

describe('llama-spm: <s> </s> <unk>', () => {
  const tok = tokenizerFor('llama-spm');

  test('BOS added by default metadata (add_bos_token = true), EOS not', () => {
    expect(tok.addBos).toBe(true);
    expect(tok.addEos).toBe(false);
    expect(tok.encode('Hello world', { addSpecial: true })).toEqual([1, 15043, 3186]);
    expect(tok.encode('', { addSpecial: true })).toEqual([1]);
    expect(tok.encode('')).toEqual([]);
  });

  test('parse_special: the text after a special token gets the space prefix again', () => {
    expect(tok.encode('<s>Hello</s>', { parseSpecial: true })).toEqual([1, 15043, 2]);
    expect(tok.encode('Hello<s>world', { parseSpecial: true })).toEqual([15043, 1, 3186]);
    const plain = tok.encode('<s>Hello</s>');
    expect(plain).not.toContain(1);
    expect(plain).not.toContain(2);
    expect(tok.decode(plain)).toBe('<s>Hello</s>');
  });

  test('end of generation: </s>; <s> is not', () => {
    expect(tok.isEndOfGeneration(2)).toBe(true);
    expect(tok.isEndOfGeneration(1)).toBe(false);
    expect(tok.eot).toBe(null);
  });

  test('a phi-3 model strips the white space after </s> (llama.cpp sets RSTRIP by model name)', () => {
    const phi3 = Tokenizer.fromMetadata(metadataWith('llama-spm', { 'general.name': 'Phi-3 mini' }));
    expect(phi3.encode('a</s>  b', { parseSpecial: true })).toEqual([...tok.encode('a'), 2, ...tok.encode('b')]);
    expect(tok.encode('a</s>  b', { parseSpecial: true })).toEqual([...tok.encode('a'), 2, ...tok.encode('  b')]);
  });
});

describe('tokens found by their text', () => {
  test('<|im_end|> / <|eot_id|> end the generation, become control tokens', () => {
    const base = readGgufMetadata(vocabPath('gpt-2'));
    const tokens = [...(base.metadata['tokenizer.ggml.tokens'] as string[])];
    tokens[50254] = '<|im_end|>';
    tokens[50255] = '<|eot_id|>';
    const t = Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.tokens': tokens }));
    expect(t.isEndOfGeneration(50254)).toBe(true);
    expect(t.isEndOfGeneration(50255)).toBe(true);
    expect(t.isEndOfGeneration(50256)).toBe(true);
    expect(t.decode([50254])).toBe(''); // control now: hidden unless special
    expect(t.decode([50254], { special: true })).toBe('<|im_end|>');
    expect(t.encode('x<|im_end|>', { parseSpecial: true })).toEqual([...t.encode('x'), 50254]);
  });

  test('tokenizer.ggml.eot_token_id is an end of generation; padding id read', () => {
    const t = Tokenizer.fromMetadata(
      metadataWith('llama-spm', { 'tokenizer.ggml.eot_token_id': 13, 'tokenizer.ggml.padding_token_id': 0 }),
    );
    expect(t.pad).toBe(0);
    expect(tokenizerFor('llama-spm').pad).toBe(null);
    expect(t.eot).toBe(13);
    expect(t.isEndOfGeneration(13)).toBe(true);
  });

  test('user-defined tokens are matched even without parseSpecial; control ones are not', () => {
    const base = readGgufMetadata(vocabPath('gpt-2'));
    const types = Int32Array.from(base.metadata['tokenizer.ggml.token_type'] as Int32Array);
    const hello = 15496; // "Hello"
    types[hello] = 4; // USER_DEFINED
    const t = Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.token_type': types }));
    expect(t.tokenText(hello)).toBe('Hello');
    // BPE alone would merge "xHelloy" differently; the user-defined token is cut out first
    expect(t.encode('xHelloy')).toEqual([...t.encode('x'), hello, ...t.encode('y')]);
    expect(tokenizerFor('gpt-2').encode('xHelloy')).not.toContain(hello);
    types[hello] = 3; // CONTROL
    const c = Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.token_type': types }));
    expect(c.encode('xHelloy')).not.toContain(hello);
    expect(c.encode('xHelloy', { parseSpecial: true })).toEqual([...c.encode('x'), hello, ...c.encode('y')]);
  });
});

describe('errors', () => {
  test('unknown tokenizer model and pre-tokenizer: TOKENIZER_UNSUPPORTED, naming them', () => {
    expect(codeOf(() => Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.model': 'bert' })))).toBe(
      'TOKENIZER_UNSUPPORTED',
    );
    const pre = () => Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.pre': 'nonesuch' }));
    expect(codeOf(pre)).toBe('TOKENIZER_UNSUPPORTED');
    expect(pre).toThrow(/'nonesuch'/);
  });

  test('a missing pre-tokenizer falls back to llama.cpp\'s "default"', () => {
    const t = Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.pre': undefined }));
    expect(t.pre).toBe('');
    expect(t.warnings.join('\n')).toMatch(/no tokenizer.ggml.pre: using llama.cpp's 'default'/);
    expect(tokenizerFor('gpt-2').warnings).toEqual([]);
    // the default regexes cut "=" and "!" and digits by three before BPE
    const words = ['x', '=', '123', '45', '!'];
    expect(t.encode('x=12345!')).toEqual(words.flatMap((w) => tokenizerFor('gpt-2').encode(w)));
  });

  test('no vocabulary: TOKENIZER_INVALID', () => {
    expect(codeOf(() => Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.tokens': undefined })))).toBe(
      'TOKENIZER_INVALID',
    );
    expect(codeOf(() => Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.model': undefined })))).toBe(
      'TOKENIZER_INVALID',
    );
    expect(codeOf(() => Tokenizer.fromMetadata(metadataWith('gpt-2', { 'tokenizer.ggml.merges': undefined })))).toBe(
      'TOKENIZER_INVALID',
    );
  });

  test('ids outside the vocabulary: TOKEN_OUT_OF_RANGE, never a crash', () => {
    const tok = tokenizerFor('llama-spm');
    for (const bad of [-1, 32000, 1.5, NaN]) {
      expect(codeOf(() => tok.decode([bad]))).toBe('TOKEN_OUT_OF_RANGE');
      expect(codeOf(() => tok.tokenBytes(bad))).toBe('TOKEN_OUT_OF_RANGE');
      expect(codeOf(() => tok.createStreamDecoder().push(bad))).toBe('TOKEN_OUT_OF_RANGE');
    }
    expect(tok.isEndOfGeneration(-1)).toBe(false);
  });

  test('a file that is no GGUF: the reader\'s error', () => {
    expect(codeOf(() => Tokenizer.load(vocabPath('gpt-2') + '.inp'))).toBe('GGUF_INVALID');
  });
});
