// The streaming detokenizer gives, piece by piece, exactly the one-shot decode, and
// never a piece with half a UTF-8 character in it.
import fc from 'fast-check';
import { cleanTokenizationSpaces } from '../server/src/tokenizer/detokenizer';
import { CleanSpacesStream } from '../server/src/tokenizer/stream-decoder';
import type { Tokenizer } from '../server/src/tokenizer';
import { readVectors, tokenizerFor, VOCABS } from './tokenizer-helpers';

function streamed(tok: Tokenizer, ids: number[], special = false): string[] {
  const dec = tok.createStreamDecoder({ special });
  const pieces = ids.map((id) => dec.push(id));
  pieces.push(dec.flush());
  return pieces;
}

const noReplacementChar = (pieces: string[]) => pieces.every((p) => !p.includes('\uFFFD'));

describe.each(VOCABS)('%s', (name) => {
  const tok = tokenizerFor(name);

  test('every vector input: streamed pieces join to the one-shot decode, none holds U+FFFD', () => {
    for (const c of readVectors(name)) {
      const pieces = streamed(tok, c.ids);
      expect(pieces.join('')).toBe(tok.decode(c.ids));
      expect(noReplacementChar(pieces)).toBe(true);
    }
  });

  test('multi-byte characters split over byte tokens are held until complete', () => {
    // "🦙" has no token of its own in either vocabulary: it is spelled in bytes
    const ids = tok.encode('a🦙b');
    expect(ids.length).toBeGreaterThan(3);
    const pieces = streamed(tok, ids);
    expect(pieces.join('')).toBe('a🦙b');
    expect(pieces.filter((p) => p.includes('🦙'))).toHaveLength(1);
    expect(noReplacementChar(pieces)).toBe(true);
  });

  test('an incomplete character at the end comes out of flush() as U+FFFD, as decode gives it', () => {
    const ids = tok.encode('🦙');
    const cut = ids.slice(0, -1);
    const pieces = streamed(tok, cut);
    expect(pieces.slice(0, -1).join('')).not.toContain('\uFFFD');
    expect(pieces.join('')).toBe(tok.decode(cut));
    expect(pieces[pieces.length - 1]).toContain('\uFFFD');
  });

  test('property: random Unicode text round-trips and streams like the one-shot decode', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc
        .array(
          fc.constantFrom(' ', '  ', "'", "'s", ' ?', '!', '.', ',', '\n', '\t', 'Hello', 'world', '▁', '🦙', '😶‍🌫️',
            '我想', 'нещо', 'é', 'e\u0301', '3', '333', '<s>', '<|endoftext|>', '\u00a0', '\u3000'),
          { maxLength: 30 },
        )
        .map((parts) => parts.join('')),
    );
    fc.assert(
      fc.property(text, (s) => {
        fc.pre(s.isWellFormed() && !s.includes('\uFFFD'));
        const ids = tok.encode(s);
        // lossless: SPM gives the text back (a literal "▁" is a space to it); byte-level
        // BPE too, up to clean_spaces
        expect(tok.decode(ids)).toBe(tok.model === 'gpt2' ? cleanTokenizationSpaces(s) : s.replace(/▁/g, ' '));
        const pieces = streamed(tok, ids);
        expect(pieces.join('')).toBe(tok.decode(ids));
        expect(noReplacementChar(pieces)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  test('property: any id sequence streams like the one-shot decode (with and without special)', () => {
    const ids = fc.array(
      fc.oneof(fc.integer({ min: 0, max: tok.vocabSize - 1 }), fc.integer({ min: 0, max: 300 })),
      { maxLength: 40 },
    );
    fc.assert(
      fc.property(ids, fc.boolean(), (seq, special) => {
        expect(streamed(tok, seq, special).join('')).toBe(tok.decode(seq, { special }));
      }),
      { numRuns: 300 },
    );
  });

  test('the decoder starts over after flush()', () => {
    const ids = tok.encode(' Hello world');
    const dec = tok.createStreamDecoder();
    const first = ids.map((id) => dec.push(id)).join('') + dec.flush();
    const second = ids.map((id) => dec.push(id)).join('') + dec.flush();
    expect(second).toBe(first);
    expect(first).toBe(tok.decode(ids));
  });
});

test('SPM: only the first piece loses its leading space', () => {
  const tok = tokenizerFor('llama-spm');
  const ids = tok.encode('Hello world'); // ▁Hello ▁world
  const pieces = streamed(tok, ids);
  expect(pieces).toEqual(['Hello', ' world', '']);
  // after a BOS the space is kept, as llama.cpp does (BOS used up the first-token rule)
  expect(streamed(tok, [1, ...ids]).join('')).toBe(' Hello world');
  expect(tok.decode([1, ...ids])).toBe(' Hello world');
  expect(tok.decode([1, ...ids], { special: true })).toBe('<s> Hello world');
});

// llama.cpp's clean-up (llama_vocab::impl::detokenize, clean_spaces), transcribed loop
// for loop over a byte array, as the oracle for the regex and the streaming versions.
function llamaCppCleanSpaces(input: string): string {
  const text = Array.from(input);
  let total = text.length;
  const total1 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total1; ++i) {
    const x = text[i];
    if (text[i - 1] === ' ' && (x === '?' || x === '!' || x === '.' || x === ',')) total--;
    text[total++] = x;
  }
  const total2 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total2; ++i) {
    const x = text[i];
    if (x === "'" && i + 1 < total2 && text[i - 1] === ' ' && text[i + 1] === ' ') {
      total--;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  const total3 = total;
  total = total ? 1 : 0;
  for (let i = 1; i < total3; ++i) {
    const x = text[i];
    if (text[i - 1] === ' ' && x === "'" && i + 1 < total3) {
      const x1 = text[i + 1];
      if (x1 === 't' || x1 === 'd') {
        // kept
      } else if (x1 === 's' || x1 === 'm') total--;
      else if (i + 2 < total3) {
        const x2 = text[i + 2];
        if ((x1 === 'r' && x2 === 'e') || (x1 === 'v' && x2 === 'e')) total--;
      }
    }
    text[total++] = x;
  }
  return text.slice(0, total).join('');
}

test('clean-up of tokenization spaces: hand-made cases, as llama.cpp gives them', () => {
  const cases: Array<[string, string]> = [
    ['Hello , world !', 'Hello, world!'],
    ['a  ?', 'a ?'], // only the space right before
    [' .', '.'], // even the first character
    ["it ' s", "it's"],
    ["a ' ' b", "a'' b"], // the space after a joined apostrophe can't start another
    ["he 's she 'm we 're you 've", "he's she'm we're you've"],
    ["don 't I 'd we 'll", "don 't I 'd we 'll"],
    [" '", " '"],
    [" 'r", " 'r"],
    ["x 'RE", "x 'RE"],
  ];
  for (const [input, out] of cases) {
    expect(llamaCppCleanSpaces(input)).toBe(out);
    expect(cleanTokenizationSpaces(input)).toBe(out);
  }
});

test('property: the regex clean-up and the streaming clean-up equal llama.cpp loops, for any chunking', () => {
  const alphabet = fc.constantFrom(' ', ' ', "'", '?', '!', '.', ',', 's', 'm', 'r', 'v', 'e', 't', 'd', 'l', 'x', 'é');
  const chunks = fc.array(fc.array(alphabet, { maxLength: 6 }).map((a) => a.join('')), { maxLength: 12 });
  fc.assert(
    fc.property(chunks, (parts) => {
      const whole = parts.join('');
      const expected = llamaCppCleanSpaces(whole);
      expect(cleanTokenizationSpaces(whole)).toBe(expected);
      const stream = new CleanSpacesStream();
      expect(parts.map((p) => stream.push(p)).join('') + stream.end()).toBe(expected);
    }),
    { numRuns: 2000 },
  );
});
