// The fast merge loops (pair tables, heaps, per-piece caches, SPM's cuts before "▁")
// give the same tokens as the textbook algorithms they implement, written here the
// slow and obvious way straight from the vocabulary: SPM merges the adjacent pair that
// forms the highest-scoring token, BPE the pair with the lowest merge rank, leftmost
// on ties, until none is left.
import fc from 'fast-check';
import { readGgufMetadata } from '../server/src/engine/gguf';
import { Tokenizer } from '../server/src/tokenizer';
import { PreTokenizer, resolvePreTokenizer } from '../server/src/tokenizer/pretokenizer';
import { BYTE_TO_CODEPOINT } from '../server/src/tokenizer/unicode';
import { tokenizerFor, vocabPath } from './tokenizer-helpers';

const utf8 = new TextEncoder();

function naiveSpm(text: string, id: Map<string, number>, scores: ArrayLike<number>): number[] {
  if (text === '') return [];
  const sym = Array.from((' ' + text).replace(/ /g, '▁'));
  for (;;) {
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i + 1 < sym.length; i++) {
      const t = id.get(sym[i] + sym[i + 1]);
      if (t !== undefined && scores[t] > bestScore) {
        best = i;
        bestScore = scores[t];
      }
    }
    if (best < 0) break;
    sym.splice(best, 2, sym[best] + sym[best + 1]);
  }
  return sym.flatMap((s) => {
    const t = id.get(s);
    if (t !== undefined) return [t];
    return [...utf8.encode(s)].map((b) => id.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!);
  });
}

function naiveBpe(text: string, id: Map<string, number>, rank: Map<string, number>): number[] {
  const bounds = new PreTokenizer(resolvePreTokenizer('gpt-2')).split(text);
  const out: number[] = [];
  for (let w = 0; w + 1 < bounds.length; w++) {
    const bytes = utf8.encode(text.slice(bounds[w], bounds[w + 1]));
    const sym = Array.from(bytes, (b) => String.fromCharCode(BYTE_TO_CODEPOINT[b]));
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < sym.length; i++) {
        const r = rank.get(sym[i] + ' ' + sym[i + 1]);
        if (r !== undefined && r < bestRank) {
          best = i;
          bestRank = r;
        }
      }
      if (best < 0) break;
      sym.splice(best, 2, sym[best] + sym[best + 1]);
    }
    for (const s of sym) out.push(id.get(s)!);
  }
  return out;
}

const text = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 24 }),
  fc
    .array(
      fc.constantFrom(' ', '  ', 'the', ' quick', 'brown', 'ing', 'tion', "'s", ',', '.', '\n', '▁', '你好', 'é', '🦙', '12',
        'Hello', 'world', 'aaaa', 'llama', 'cpp', '<s>', '\t'),
      { maxLength: 16 },
    )
    .map((a) => a.join('')),
);

const spmMeta = readGgufMetadata(vocabPath('llama-spm'));
const spmIds = new Map((spmMeta.metadata['tokenizer.ggml.tokens'] as string[]).map((t, i) => [t, i]));

test('SPM (llama-spm vocabulary) equals the textbook score merge', () => {
  const tok = tokenizerFor('llama-spm');
  const scores = spmMeta.metadata['tokenizer.ggml.scores'] as Float32Array;
  fc.assert(
    fc.property(text, (s) => {
      fc.pre(s.isWellFormed());
      expect(tok.encode(s)).toEqual(naiveSpm(s, spmIds, scores));
    }),
    { numRuns: 300 },
  );
});

test('SPM with all scores equal equals the textbook merge: leftmost pair first', () => {
  const zeros = new Float32Array(spmIds.size);
  const tok = Tokenizer.fromMetadata({
    ...spmMeta,
    metadata: { ...spmMeta.metadata, 'tokenizer.ggml.scores': zeros },
  });
  fc.assert(
    fc.property(text, (s) => {
      fc.pre(s.isWellFormed());
      expect(tok.encode(s)).toEqual(naiveSpm(s, spmIds, zeros));
    }),
    { numRuns: 200 },
  );
});

test('byte-level BPE (gpt-2 vocabulary) equals the textbook rank merge', () => {
  const tok = tokenizerFor('gpt-2');
  const md = readGgufMetadata(vocabPath('gpt-2')).metadata;
  const id = new Map((md['tokenizer.ggml.tokens'] as string[]).map((t, i) => [t, i]));
  const rank = new Map<string, number>();
  (md['tokenizer.ggml.merges'] as string[]).forEach((m, i) => {
    if (!rank.has(m)) rank.set(m, i);
  });
  fc.assert(
    fc.property(text, (s) => {
      fc.pre(s.isWellFormed());
      expect(tok.encode(s)).toEqual(naiveBpe(s, id, rank));
    }),
    { numRuns: 300 },
  );
});
