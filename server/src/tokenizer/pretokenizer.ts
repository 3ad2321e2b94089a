// Pre-tokenizers of byte-level BPE vocabularies: how llama.cpp (src/llama-vocab.cpp,
// src/unicode.cpp) splits text into words before BPE, per `tokenizer.ggml.pre`.
//
// llama.cpp runs a list of regexes one after the other; each regex re-splits every
// piece the previous one produced into its matches and the gaps between them.
// Its classes mean (unicode.cpp, unicode-data.cpp):
//   \p{L} \p{N} \p{P} \p{M} \p{S}  the Unicode general categories
//   \s                             the Unicode White_Space property (25 code points:
//                                  it includes U+0085 and not U+FEFF, unlike JS's \s)
// The JS patterns below are llama.cpp's with \s written as \p{White_Space}, and
// `(?i:...)` spelled out by case ('[sS]'), since JS has no inline flags.
//
// Patterns without \p{..} run in llama.cpp over text in which every non-ASCII
// White_Space code point was replaced by U+000B, so their literal non-ASCII ranges
// never match a white-space character: the ranges below leave those code points out.

import { TokenizerError } from './errors';

export interface PreTokenizerSpec {
  /** llama.cpp's LLAMA_VOCAB_PRE_TYPE_* this name maps to (for messages and tests) */
  kind: string;
  /** regex sources, applied in order (flags 'gu') */
  patterns: string[];
  /** llama.cpp's clean_spaces (clean_up_tokenization_spaces) for this pre-tokenizer */
  cleanSpaces: boolean;
  /** a word that is itself a token is emitted whole, without merging (Llama 3, Tekken) */
  ignoreMerges: boolean;
  /** default of add_bos_token when the metadata doesn't say */
  addBos: boolean;
  /** the model has no BOS by default (ChatGLM) */
  noBos?: boolean;
}

const WS = '\\p{White_Space}';
const NOT_WS = '\\P{White_Space}';

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
const GPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|${WS}+(?!${NOT_WS})`;

const CONTRACTIONS_ANY_CASE = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
const LLAMA3 =
  `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
  `|${WS}*[\\r\\n]+|${WS}+(?!${NOT_WS})|${WS}+`;

// as LLAMA3 with single digits
const QWEN2 =
  `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*` +
  `|${WS}*[\\r\\n]+|${WS}+(?!${NOT_WS})|${WS}+`;

// [一-龥ࠀ-一가-퟿]+ without the white-space code points U+1680, U+2000-200A, U+2028-2029,
// U+202F, U+205F, U+3000 that the U+0800-U+4E00 range spans (see the header)
const CJK =
  '[\\u{4E00}-\\u{9FA5}\\u{800}-\\u{167F}\\u{1681}-\\u{1FFF}\\u{200B}-\\u{2027}\\u{202A}-\\u{202E}' +
  '\\u{2030}-\\u{205E}\\u{2060}-\\u{2FFF}\\u{3001}-\\u{4E00}\\u{AC00}-\\u{D7FF}]+';

// DeepSeek LLM's cased-letter class, code point for code point as in llama.cpp
const DEEPSEEK_LETTERS =
  'A-Za-z\\u{B5}\\u{C0}-\\u{D6}\\u{D8}-\\u{F6}\\u{F8}-\\u{1BA}\\u{1BC}-\\u{1BF}\\u{1C4}-\\u{293}\\u{295}-\\u{2AF}' +
  '\\u{370}-\\u{373}\\u{376}\\u{377}\\u{37B}-\\u{37D}\\u{37F}\\u{386}\\u{388}-\\u{38A}\\u{38C}\\u{38E}-\\u{3A1}' +
  '\\u{3A3}-\\u{3F5}\\u{3F7}-\\u{481}\\u{48A}-\\u{52F}\\u{531}-\\u{556}\\u{10A0}-\\u{10C5}\\u{13A0}-\\u{13F5}' +
  '\\u{13F8}-\\u{13FD}\\u{1C90}-\\u{1CBA}\\u{1CBD}-\\u{1CBF}\\u{1D00}-\\u{1D2B}\\u{1D6B}-\\u{1D77}\\u{1D79}-\\u{1D9A}' +
  '\\u{1E00}-\\u{1F15}\\u{1F18}-\\u{1F1D}\\u{1F20}-\\u{1F45}\\u{1F48}-\\u{1F4D}\\u{1F50}-\\u{1F57}\\u{1F59}\\u{1F5B}' +
  '\\u{1F5D}\\u{1F5F}-\\u{1F7D}\\u{1F80}-\\u{1FB4}\\u{1FB6}-\\u{1FBC}\\u{1FBE}\\u{1FC2}-\\u{1FC4}\\u{1FC6}-\\u{1FCC}' +
  '\\u{1FD0}-\\u{1FD3}\\u{1FD6}-\\u{1FDB}\\u{1FE0}-\\u{1FEC}\\u{1FF2}-\\u{1FF4}\\u{1FF6}-\\u{1FFC}\\u{2102}\\u{2107}' +
  '\\u{210A}-\\u{2113}\\u{2115}\\u{2119}-\\u{211D}\\u{2124}\\u{2126}\\u{2128}\\u{212A}-\\u{212D}\\u{212F}-\\u{2134}' +
  '\\u{2139}\\u{213C}-\\u{213F}\\u{2145}-\\u{2149}\\u{214E}\\u{2183}\\u{2184}\\u{2C00}-\\u{2C7B}\\u{2C7E}-\\u{2CE4}' +
  '\\u{2CEB}-\\u{2CEE}\\u{2CF2}\\u{2CF3}\\u{A640}-\\u{A66D}\\u{A680}-\\u{A69B}\\u{A722}-\\u{A76F}\\u{A771}-\\u{A787}' +
  '\\u{A78B}-\\u{A78E}\\u{AB70}-\\u{ABBF}\\u{FB00}-\\u{FB06}\\u{FB13}-\\u{FB17}\\u{FF21}-\\u{FF3A}\\u{FF41}-\\u{FF5A}' +
  '\\u{10400}-\\u{1044F}\\u{104B0}-\\u{104D3}\\u{104D8}-\\u{104FB}\\u{10C80}-\\u{10CB2}\\u{10CC0}-\\u{10CF2}' +
  '\\u{118A0}-\\u{118DF}\\u{1E900}-\\u{1E943}';

// tekken / gpt-4o letter runs: upper-case-ish* lower-case-ish+ | upper-case-ish+ lower-case-ish*
const UPPERISH = '(?:(?=\\p{L})[^a-z])';
const LOWERISH = '(?:(?=\\p{L})[^A-Z])';

const GPT2_SPEC: Omit<PreTokenizerSpec, 'kind'> = {
  patterns: [GPT2],
  cleanSpaces: true,
  ignoreMerges: false,
  addBos: false,
};

const SPECS: Record<string, PreTokenizerSpec> = {
  default: {
    kind: 'default',
    patterns: ['[\\p{P}$+<=>^~|]+', GPT2, '\\p{N}+', '[0-9][0-9][0-9]'],
    cleanSpaces: true,
    ignoreMerges: false,
    addBos: false,
  },
  'gpt-2': { kind: 'gpt2', ...GPT2_SPEC },
  llama3: { kind: 'llama3', patterns: [LLAMA3], cleanSpaces: true, ignoreMerges: true, addBos: true },
  'deepseek-llm': {
    kind: 'deepseek-llm',
    patterns: [
      '[\\r\\n]',
      `${WS}?[${DEEPSEEK_LETTERS}]+`,
      // U+3000 (ideographic space) is left out of 　-。 (see the header)
      `${WS}?[!-/:-~\\u{FF01}-\\u{FF0F}\\u{FF1A}-\\u{FF5E}\\u{2018}-\\u{201F}\\u{3001}-\\u{3002}]+`,
      `${WS}+$`,
      CJK,
      '\\p{N}+',
    ],
    cleanSpaces: false,
    ignoreMerges: false,
    addBos: false,
  },
  'deepseek-coder': {
    kind: 'deepseek-coder',
    patterns: ['[\\r\\n]', `${WS}?\\p{L}+`, `${WS}?\\p{P}+`, CJK, '\\p{N}'],
    cleanSpaces: false,
    ignoreMerges: false,
    addBos: false,
  },
  falcon: {
    kind: 'falcon',
    patterns: ['[\\p{P}$+<=>^~|`]+', GPT2, '[0-9][0-9][0-9]'],
    cleanSpaces: true,
    ignoreMerges: false,
    addBos: false,
  },
  starcoder: { kind: 'starcoder', patterns: ['\\p{N}', GPT2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  refact: { kind: 'refact', patterns: ['\\p{N}', GPT2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  'command-r': { kind: 'command-r', patterns: ['\\p{N}', GPT2], cleanSpaces: false, ignoreMerges: false, addBos: false },
  smollm: { kind: 'smollm', patterns: ['\\p{N}', GPT2], cleanSpaces: false, ignoreMerges: false, addBos: false },
  codeshell: { kind: 'codeshell', patterns: ['\\p{N}', GPT2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  exaone: { kind: 'exaone', patterns: ['\\p{N}', GPT2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  'minerva-7b': { kind: 'minerva', patterns: ['\\p{N}', GPT2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  mpt: { kind: 'mpt', ...GPT2_SPEC },
  olmo: { kind: 'olmo', ...GPT2_SPEC },
  jais: { kind: 'jais', ...GPT2_SPEC },
  qwen2: { kind: 'qwen2', patterns: [QWEN2], cleanSpaces: false, ignoreMerges: false, addBos: false },
  stablelm2: { kind: 'stablelm2', patterns: [QWEN2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  megrez: { kind: 'qwen2', patterns: [QWEN2], cleanSpaces: true, ignoreMerges: false, addBos: false },
  dbrx: { kind: 'dbrx', patterns: [LLAMA3], cleanSpaces: true, ignoreMerges: false, addBos: false },
  'smaug-bpe': { kind: 'smaug', patterns: [LLAMA3], cleanSpaces: true, ignoreMerges: false, addBos: false },
  'chatglm-bpe': { kind: 'chatglm4', patterns: [LLAMA3], cleanSpaces: true, ignoreMerges: false, addBos: false, noBos: true },
  'poro-chat': {
    kind: 'poro',
    patterns: [` ?[^(${WS}|.,!?\\u{2026}\\u{3002}\\u{FF0C}\\u{3001}\\u{0964}\\u{06D4}\\u{060C})]+`],
    cleanSpaces: false,
    ignoreMerges: false,
    addBos: false,
  },
  tekken: {
    kind: 'tekken',
    patterns: [
      `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}*${LOWERISH}+|[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}+${LOWERISH}*|\\p{N}` +
        `| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${WS}*[\\r\\n]+|${WS}+(?!${NOT_WS})|${WS}+`,
    ],
    cleanSpaces: false,
    ignoreMerges: true,
    addBos: true,
  },
  'gpt-4o': {
    kind: 'gpt4o',
    patterns: [
      `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}*${LOWERISH}+${CONTRACTIONS_ANY_CASE}?` +
        `|[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}+${LOWERISH}*${CONTRACTIONS_ANY_CASE}?` +
        `|\\p{N}{1,3}| ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*|${WS}*[\\r\\n]+|${WS}+(?!${NOT_WS})|${WS}+`,
    ],
    cleanSpaces: false,
    ignoreMerges: false,
    addBos: false,
  },
};

/** tokenizer.ggml.pre names llama.cpp accepts as another name of one of SPECS */
const ALIASES: Record<string, string> = {
  'llama-bpe': 'llama3',
  'llama-v3': 'llama3',
  falcon3: 'llama3',
  'falcon-h1': 'llama3',
  pixtral: 'llama3',
  'midm-2.0': 'llama3',
  lfm2: 'llama3',
  'phi-2': 'gpt-2',
  'jina-es': 'gpt-2',
  'jina-de': 'gpt-2',
  'jina-v2-es': 'gpt-2',
  'jina-v2-de': 'gpt-2',
  gigachat: 'gpt-2',
  'a.x-4.0': 'gpt-2',
  mellum: 'gpt-2',
  exaone4: 'gpt-2',
  // Not a name llama.cpp knows: GPT-NeoX's tokenizer (as OLMo's, which llama.cpp maps
  // to the GPT-2 regex) is byte-level BPE with the GPT-2 split regex.
  'gpt-neox': 'olmo',
  'deepseek-r1-qwen': 'qwen2',
  glm4: 'chatglm-bpe',
  bloom: 'poro-chat',
  'gpt3-finnish': 'poro-chat',
  llama4: 'gpt-4o',
};

/** The names accepted for tokenizer.ggml.pre (sorted), for messages and docs. */
export function knownPreTokenizers(): string[] {
  return [...Object.keys(SPECS), ...Object.keys(ALIASES)].sort();
}

/**
 * The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre`. A missing name means
 * 'default' (llama.cpp does the same, with a warning); an unknown one is refused.
 */
export function resolvePreTokenizer(pre: string | undefined): PreTokenizerSpec {
  const name = pre === undefined || pre === '' ? 'default' : pre;
  const spec = SPECS[name] ?? SPECS[ALIASES[name] ?? ''];
  if (!spec) {
    throw new TokenizerError(
      'TOKENIZER_UNSUPPORTED',
      `unknown pre-tokenizer type: '${name}' (tokenizer.ggml.pre); known: ${knownPreTokenizers().join(', ')}`,
    );
  }
  return spec;
}

/**
 * Splits text into words: applies each regex in turn to every piece so far, keeping
 * the matches and the gaps between them. Returns the word boundaries as UTF-16
 * offsets: word i is text.slice(bounds[i], bounds[i + 1]).
 */
export class PreTokenizer {
  private readonly regexes: RegExp[];

  constructor(readonly spec: PreTokenizerSpec) {
    this.regexes = spec.patterns.map((p) => new RegExp(p, 'gu'));
  }

  split(text: string): number[] {
    let bounds = [0, text.length];
    if (text.length === 0) return [0];
    for (const re of this.regexes) {
      const next: number[] = [0];
      for (let p = 0; p + 1 < bounds.length; p++) {
        const start = bounds[p];
        const end = bounds[p + 1];
        // regexes see only the piece, as llama.cpp's do (lookaheads stop at its end)
        const piece = start === 0 && end === text.length ? text : text.slice(start, end);
        re.lastIndex = 0;
        let m: RegExpExecArray | null;
        let last = 0;
        while ((m = re.exec(piece)) !== null) {
          const ms = m.index;
          const me = ms + m[0].length;
          if (me === ms) {
            re.lastIndex++; // an empty match splits nothing
            continue;
          }
          if (ms > last) next.push(start + ms);
          next.push(start + me);
          last = me;
        }
        if (last < piece.length) next.push(end);
      }
      bounds = next;
    }
    return bounds;
  }
}
