// Shared by the tokenizer tests: the llama.cpp vocabulary fixtures and their vectors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '../server/src/tokenizer';

export const TOKENIZER_FIXTURES = path.join(__dirname, 'fixtures', 'tokenizer');
export const VOCABS = ['llama-spm', 'gpt-2'] as const;
export type VocabName = (typeof VOCABS)[number];

export function vocabPath(name: VocabName): string {
  return path.join(TOKENIZER_FIXTURES, `ggml-vocab-${name}.gguf`);
}

const loaded = new Map<string, Tokenizer>();

/** One Tokenizer per vocabulary file per test file (loading takes a few hundred ms). */
export function tokenizerFor(name: VocabName): Tokenizer {
  let t = loaded.get(name);
  if (!t) {
    t = Tokenizer.load(vocabPath(name));
    loaded.set(name, t);
  }
  return t;
}

export interface VectorCase {
  text: string;
  ids: number[];
}

/** llama.cpp's test-tokenizer-0 format: texts split on "\n__ggml_vocab_test__\n", one id line each. */
export function readVectors(name: VocabName): VectorCase[] {
  const sep = '\n__ggml_vocab_test__\n';
  const inp = fs.readFileSync(vocabPath(name) + '.inp', 'utf8');
  const texts = inp.split(sep);
  if (inp.endsWith(sep)) texts.pop(); // the file ends with a separator
  const lines = fs.readFileSync(vocabPath(name) + '.out', 'utf8').split('\n');
  if (lines.length > texts.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== texts.length) throw new Error(`${name}: ${texts.length} texts but ${lines.length} id lines`);
  return texts.map((text, i) => {
    const line = lines[i].trim();
    return { text, ids: line === '' ? [] : line.split(/\s+/).map(Number) };
  });
}
