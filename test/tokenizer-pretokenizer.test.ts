// Pre-tokenizers (how text is cut into words before byte-level BPE), per
// tokenizer.ggml.pre. Only 'gpt-2' has a vector file from llama.cpp; the expected
// splits here are derived by hand from the regexes llama.cpp uses for each name
// (src/llama-vocab.cpp, llm_tokenizer_bpe), applying them one after the other, each
// cutting every piece into its matches and the gaps between them. The derivation is
// in the comment of each case.
import { PreTokenizer, resolvePreTokenizer } from '../server/src/tokenizer/pretokenizer';

function words(pre: string, text: string): string[] {
  const bounds = new PreTokenizer(resolvePreTokenizer(pre)).split(text);
  const out: string[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) out.push(text.slice(bounds[i], bounds[i + 1]));
  return out;
}

test('gpt-2 (also mpt, olmo, phi-2, gpt-neox): one regex, no digit limit', () => {
  // 's is a contraction; "  test": \s+(?!\S) takes one space, " test" is ' ?\p{L}+';
  // "\n\n1": \s+(?!\S) takes the first \n, the second one is a gap; digits run unbounded
  const expected = ['Hello', ' world', "'s", ' ', ' test', '\n', '\n', '123456', ' !!?'];
  for (const pre of ['gpt-2', 'mpt', 'olmo', 'phi-2', 'gpt-neox']) {
    expect(words(pre, "Hello world's  test\n\n123456 !!?")).toEqual(expected);
  }
  // contractions are lower case only: "'RE" is punctuation then letters
  expect(words('gpt-2', "WE'RE")).toEqual(['WE', "'", 'RE']);
});

test('white space is Unicode White_Space: U+0085 is, U+FEFF is not (unlike JS \\s)', () => {
  // " \u0085b": two white-space characters before b: \s+(?!\S) takes the space, U+0085 is a gap
  expect(words('gpt-2', 'a \u0085b')).toEqual(['a', ' ', '\u0085', 'b']);
  // U+FEFF is a format character: ' ?[^\s\p{L}\p{N}]+' takes it with the space
  expect(words('gpt-2', 'a \uFEFFb')).toEqual(['a', ' \uFEFF', 'b']);
});

test('llama-bpe (llama3): contractions in any case, digits by three, newlines kept with punctuation', () => {
  // "  test": one space alone then " test"; "\n\n" is \s*[\r\n]+; 123456 -> 123 456;
  // " !!?\n" is ' ?[^\s\p{L}\p{N}]+[\r\n]*'; "  x" -> " " then " x" ([^\r\n\p{L}\p{N}]?\p{L}+)
  expect(words('llama-bpe', "Hello world's  test\n\n123456 !!?\n  x")).toEqual([
    'Hello', ' world', "'s", ' ', ' test', '\n\n', '123', '456', ' !!?\n', ' ', ' x',
  ]);
  expect(words('llama-bpe', "WE'RE")).toEqual(['WE', "'RE"]);
  // a non-letter, non-digit (here a tab) joins the letters after it
  expect(words('llama3', 'a\tb')).toEqual(['a', '\tb']);
});

test('qwen2: as llama3 with single digits', () => {
  expect(words('qwen2', "it's 2024!")).toEqual(['it', "'s", ' ', '2', '0', '2', '4', '!']);
  expect(words('deepseek-r1-qwen', '12')).toEqual(['1', '2']);
});

test('default (no or "default" pre): punctuation runs, GPT-2 regex, numbers, then threes', () => {
  // [\p{P}$+<=>^~|]+ cuts "=" and "!", the GPT-2 regex leaves "x" and "12345",
  // \p{N}+ keeps "12345", [0-9]{3} cuts it to 123 + 45
  expect(words('default', 'x=12345!')).toEqual(['x', '=', '123', '45', '!']);
  expect(words('', 'x=12345!')).toEqual(['x', '=', '123', '45', '!']);
});

test('falcon: punctuation and symbol runs first, GPT-2 regex, then digit threes', () => {
  // step 1: "+", "==", "," cut out; step 2: " 12345" and " x"; step 3: " " + "123" + "45"
  expect(words('falcon', 'a+b==c, 12345 x')).toEqual(['a', '+', 'b', '==', 'c', ',', ' ', '123', '45', ' x']);
});

test('starcoder, refact, smollm: single digits first, then the GPT-2 regex', () => {
  // \p{N} cuts 1 2 3 and the final 1; "abc " -> "abc" + " " (trailing \s+(?!\S)); " x"
  for (const pre of ['starcoder', 'refact', 'smollm']) {
    expect(words(pre, 'abc 123 x1')).toEqual(['abc', ' ', '1', '2', '3', ' x', '1']);
  }
});

test('deepseek-coder: newlines, letters, punctuation, CJK, single digits', () => {
  // [\r\n] -> "def f(x):" "\n" "  return 12"; \s?\p{L}+ -> "def" " f" "(" "x" "):" ...
  // " " " return" " 12"; \s?\p{P}+ keeps "(" and "):"; \p{N} -> " " "1" "2"
  expect(words('deepseek-coder', 'def f(x):\n  return 12')).toEqual([
    'def', ' f', '(', 'x', '):', '\n', ' ', ' return', ' ', '1', '2',
  ]);
});

test('deepseek-llm: cased letters, ASCII/full-width punctuation, CJK, numbers', () => {
  // "Hello" is in the letter class, 世 is not; "," and "!" are punctuation; " 世界" -> " " "世界";
  // " 12" -> " " "12"
  expect(words('deepseek-llm', 'Hello, 世界! 12')).toEqual(['Hello', ',', ' ', '世界', '!', ' ', '12']);
  // an ideographic space (U+3000) is white space, never part of the punctuation class's
  // range 　-。 (llama.cpp matches that regex on text whose non-ASCII white space it has
  // replaced by U+000B): \s?[...]+ can't start at the first U+3000, so it is a gap
  expect(words('deepseek-llm', '\u3000\u3000!')).toEqual(['\u3000', '\u3000!']);
});

test('poro-chat / bloom: words with an optional space, cut at punctuation', () => {
  expect(words('bloom', 'Hei maailma, mitä kuuluu?')).toEqual(['Hei', ' maailma', ',', ' mitä', ' kuuluu', '?']);
});

test('gpt-4o / tekken: case-aware letter runs', () => {
  // upper* lower+ (with contraction): "Hello" then "World's"; digits by three
  expect(words('gpt-4o', "HelloWorld's 12345")).toEqual(['Hello', "World's", ' ', '123', '45']);
  // tekken: single digits, no contraction group
  expect(words('tekken', 'HelloWorld 12')).toEqual(['Hello', 'World', ' ', '1', '2']);
});

test('an unknown pre-tokenizer is refused with a clear error naming it', () => {
  let err: unknown;
  try {
    resolvePreTokenizer('my-new-tokenizer');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Error);
  expect((err as { code: string }).code).toBe('TOKENIZER_UNSUPPORTED');
  expect((err as Error).message).toMatch(/unknown pre-tokenizer type: 'my-new-tokenizer'/);
});

test('names llama.cpp maps to the same pre-tokenizer behave the same', () => {
  const text = "Don't stop 1234567 — ok?\r\n\tyes";
  expect(words('llama-bpe', text)).toEqual(words('llama3', text));
  expect(words('llama-v3', text)).toEqual(words('llama3', text));
  expect(words('mpt', text)).toEqual(words('gpt-2', text));
  expect(words('stablelm2', text)).toEqual(words('qwen2', text));
});
