// The vocabulary a GGUF file carries (tokenizer.ggml.*), read the way llama.cpp's
// llama_vocab::impl::load reads it: token texts, scores and types, the special
// token ids and flags, the end-of-generation set and the special-token list.

import type { GgufMetadata, GgufValue } from '../engine/types';
import { TokenizerError } from './errors';
import { resolvePreTokenizer, type PreTokenizerSpec } from './pretokenizer';
import { utf8ByteLength } from './unicode';

/** llama_token_attr bits */
export const ATTR = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
  NORMALIZED: 1 << 6,
  LSTRIP: 1 << 7,
  RSTRIP: 1 << 8,
  SINGLE_WORD: 1 << 9,
} as const;

/** tokenizer.ggml.token_type values (llama_token_type) -> attribute */
function attrFromType(type: number): number {
  switch (type) {
    case 1:
      return ATTR.NORMAL;
    case 2:
      return ATTR.UNKNOWN;
    case 3:
      return ATTR.CONTROL;
    case 4:
      return ATTR.USER_DEFINED;
    case 5:
      return ATTR.UNUSED;
    case 6:
      return ATTR.BYTE;
    default:
      return ATTR.UNDEFINED;
  }
}

export type VocabType = 'spm' | 'bpe';

/** Everything the tokenizers need, as plain data. */
export interface Vocab {
  type: VocabType;
  model: string; // tokenizer.ggml.model
  pre: string; // tokenizer.ggml.pre ('' if absent)
  preTokenizer: PreTokenizerSpec | null; // BPE only
  tokens: string[];
  scores: Float32Array;
  attrs: Uint16Array;
  tokenToId: Map<string, number>;
  merges: string[]; // BPE only
  bos: number | null;
  eos: number | null;
  eot: number | null;
  eom: number | null;
  unk: number | null;
  sep: number | null;
  pad: number | null;
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
  cleanSpaces: boolean;
  ignoreMerges: boolean;
  eog: Set<number>;
  /** control / user-defined / unknown tokens, longest text (in bytes) first */
  specialTokens: number[];
  chatTemplate: string | null;
  name: string;
  /** what llama.cpp would warn about when loading this vocabulary */
  warnings: string[];
}

// ---- metadata accessors: tolerant of how the reader represents numbers ----

type Meta = Record<string, GgufValue>;

function num(v: GgufValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

function str(meta: Meta, key: string): string | undefined {
  const v = meta[key];
  return typeof v === 'string' ? v : undefined;
}

function bool(meta: Meta, key: string): boolean | undefined {
  const v = meta[key];
  if (typeof v === 'boolean') return v;
  const n = num(v);
  return n === undefined ? undefined : n !== 0;
}

function stringArray(meta: Meta, key: string): string[] | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new TokenizerError('TOKENIZER_INVALID', `${key} is not an array of strings`);
  }
  return v as string[];
}

function numberArray(meta: Meta, key: string): ArrayLike<number> | undefined {
  const v = meta[key];
  if (v === undefined) return undefined;
  if (ArrayBuffer.isView(v) && !(v instanceof BigInt64Array) && !(v instanceof BigUint64Array)) {
    return v as unknown as ArrayLike<number>;
  }
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  throw new TokenizerError('TOKENIZER_INVALID', `${key} is not a numeric array`);
}

// token texts llama.cpp treats as end of generation / end of turn, by name
const EOT_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>',
  '<EOT>', '_<EOT>', '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>',
]);
const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>',
  '<end_of_turn>', '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]',
  '<|end_of_text|>', '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>',
  '<｜end▁of▁sentence｜>', '[e~[',
]);
const FIM_PRE_TEXTS = new Set(['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>', '<|code_prefix|>', '<|prefix|>']);
const FIM_SUF_TEXTS = new Set(['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>', '<|code_suffix|>', '<|suffix|>']);
const FIM_MID_TEXTS = new Set(['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>', '<|code_middle|>', '<|middle|>']);
const FIM_PAD_TEXTS = new Set(['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]']);
const FIM_REP_TEXTS = new Set(['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>']);
const FIM_SEP_TEXTS = new Set(['<|file_sep|>']);

/** Builds the vocabulary from a GGUF file's metadata. */
export function vocabFromMetadata(gguf: GgufMetadata): Vocab {
  const meta = gguf.metadata;
  const model = str(meta, 'tokenizer.ggml.model');
  if (model === undefined) {
    throw new TokenizerError('TOKENIZER_INVALID', `${gguf.path}: no tokenizer.ggml.model in the metadata`);
  }
  const pre = str(meta, 'tokenizer.ggml.pre') ?? '';
  const warnings: string[] = [];

  let type: VocabType;
  let bos: number | null;
  let eos: number | null;
  let unk: number | null;
  let preTokenizer: PreTokenizerSpec | null = null;
  let addSpacePrefix: boolean;
  let cleanSpaces: boolean;
  let ignoreMerges = false;
  let addBos: boolean;
  let addEos = false;
  let merges: string[] = [];

  if (model === 'llama') {
    type = 'spm';
    bos = 1;
    eos = 2;
    unk = 0;
    addSpacePrefix = true;
    cleanSpaces = false;
    addBos = true;
  } else if (model === 'gpt2') {
    type = 'bpe';
    bos = 11;
    eos = 11;
    unk = null;
    merges = stringArray(meta, 'tokenizer.ggml.merges') ?? [];
    if (merges.length === 0) {
      throw new TokenizerError('TOKENIZER_INVALID', `${gguf.path}: gpt2 tokenizer without tokenizer.ggml.merges`);
    }
    preTokenizer = resolvePreTokenizer(pre);
    if (pre === '') {
      warnings.push("no tokenizer.ggml.pre: using llama.cpp's 'default' pre-tokenizer (the model's own may differ)");
    }
    addSpacePrefix = false;
    cleanSpaces = preTokenizer.cleanSpaces;
    ignoreMerges = preTokenizer.ignoreMerges;
    addBos = preTokenizer.addBos;
    if (preTokenizer.noBos) bos = null;
  } else {
    throw new TokenizerError(
      'TOKENIZER_UNSUPPORTED',
      `unsupported tokenizer model '${model}' (tokenizer.ggml.model); supported: llama (SentencePiece), gpt2 (byte-level BPE)`,
    );
  }
  addSpacePrefix = bool(meta, 'tokenizer.ggml.add_space_prefix') ?? addSpacePrefix;

  const tokens = stringArray(meta, 'tokenizer.ggml.tokens');
  if (!tokens || tokens.length === 0) {
    throw new TokenizerError('TOKENIZER_INVALID', `${gguf.path}: no tokenizer.ggml.tokens in the metadata`);
  }
  const n = tokens.length;
  const rawScores = numberArray(meta, 'tokenizer.ggml.scores');
  const rawTypes = numberArray(meta, 'tokenizer.ggml.token_type');
  if (rawScores && rawScores.length < n) {
    throw new TokenizerError('TOKENIZER_INVALID', `tokenizer.ggml.scores has ${rawScores.length} entries for ${n} tokens`);
  }
  if (rawTypes && rawTypes.length < n) {
    throw new TokenizerError('TOKENIZER_INVALID', `tokenizer.ggml.token_type has ${rawTypes.length} entries for ${n} tokens`);
  }

  const texts = new Array<string>(n);
  const scores = new Float32Array(n);
  const attrs = new Uint16Array(n);
  const tokenToId = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const text = tokens[i] === '' ? `[EMPTY_${i}]` : tokens[i];
    texts[i] = text;
    // llama.cpp refuses duplicates; keep the first so a vocabulary whose invalid
    // UTF-8 texts became the same string still loads
    if (!tokenToId.has(text)) tokenToId.set(text, i);
    else warnings.push(`token ${i} repeats the text of token ${tokenToId.get(text)}: ${JSON.stringify(text)}`);
    if (rawScores) scores[i] = rawScores[i];
    attrs[i] = rawTypes ? attrFromType(rawTypes[i]) : ATTR.NORMAL;
  }

  // special token ids: defaults out of range are dropped; metadata ids out of range ignored
  const specialId = (key: string, def: number | null): number | null => {
    let id = def !== null && def >= n ? null : def;
    const v = num(meta[key]);
    if (v !== undefined && Number.isInteger(v) && v >= 0 && v < n) id = v;
    else if (v !== undefined) warnings.push(`${key} = ${v} is outside the vocabulary, using ${id}`);
    return id;
  };
  bos = specialId('tokenizer.ggml.bos_token_id', bos);
  eos = specialId('tokenizer.ggml.eos_token_id', eos);
  let eot = specialId('tokenizer.ggml.eot_token_id', null);
  let eom = specialId('tokenizer.ggml.eom_token_id', null);
  unk = specialId('tokenizer.ggml.unknown_token_id', unk);
  const sep = specialId('tokenizer.ggml.seperator_token_id', null);
  const pad = specialId('tokenizer.ggml.padding_token_id', null);
  let fimPre = specialId('tokenizer.ggml.fim_pre_token_id', null) ?? specialId('tokenizer.ggml.prefix_token_id', null);
  let fimSuf = specialId('tokenizer.ggml.fim_suf_token_id', null) ?? specialId('tokenizer.ggml.suffix_token_id', null);
  let fimMid = specialId('tokenizer.ggml.fim_mid_token_id', null) ?? specialId('tokenizer.ggml.middle_token_id', null);
  let fimPad = specialId('tokenizer.ggml.fim_pad_token_id', null);
  let fimRep = specialId('tokenizer.ggml.fim_rep_token_id', null);
  let fimSep = specialId('tokenizer.ggml.fim_sep_token_id', null);

  addBos = bool(meta, 'tokenizer.ggml.add_bos_token') ?? addBos;
  addEos = bool(meta, 'tokenizer.ggml.add_eos_token') ?? addEos;
  if (addBos && bos === null) {
    throw new TokenizerError('TOKENIZER_INVALID', 'tokenizer.ggml.add_bos_token is true, but there is no BOS token');
  }
  if (addEos && eos === null) {
    throw new TokenizerError('TOKENIZER_INVALID', 'tokenizer.ggml.add_eos_token is true, but there is no EOS token');
  }

  // tokens found by their text: they become control tokens (llama.cpp does the same)
  const markControl = (id: number) => {
    attrs[id] |= ATTR.CONTROL;
  };
  for (let id = 0; id < n; id++) {
    const t = texts[id];
    if (eot === null && EOT_TEXTS.has(t)) {
      eot = id;
      markControl(id);
    }
    if (eom === null && t === '<|eom_id|>') {
      eom = id;
      markControl(id);
    }
    if (fimPre === null && FIM_PRE_TEXTS.has(t)) {
      fimPre = id;
      markControl(id);
    }
    if (fimSuf === null && FIM_SUF_TEXTS.has(t)) {
      fimSuf = id;
      markControl(id);
    }
    if (fimMid === null && FIM_MID_TEXTS.has(t)) {
      fimMid = id;
      markControl(id);
    }
    if (fimPad === null && FIM_PAD_TEXTS.has(t)) {
      fimPad = id;
      markControl(id);
    }
    if (fimRep === null && FIM_REP_TEXTS.has(t)) {
      fimRep = id;
      markControl(id);
    }
    if (fimSep === null && FIM_SEP_TEXTS.has(t)) {
      fimSep = id;
      markControl(id);
    }
  }
  // control tokens named "...unused..." are unused
  for (let id = 0; id < n; id++) {
    if (attrs[id] & ATTR.CONTROL && texts[id].includes('unused')) attrs[id] |= ATTR.UNUSED;
  }

  const eog = new Set<number>();
  for (const id of [fimPad, fimRep, fimSep]) if (id !== null) eog.add(id);
  for (let id = 0; id < n; id++) {
    if (EOG_TEXTS.has(texts[id])) {
      eog.add(id);
      markControl(id);
    }
  }
  // gpt-oss: these are rendered as text
  for (const t of ['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']) {
    const id = tokenToId.get(t);
    if (id !== undefined) attrs[id] = ATTR.USER_DEFINED;
  }
  for (const id of [eos, eot, eom]) if (id !== null) eog.add(id);
  // harmony / solar-open: <|end|> ends a message, not the generation
  const eogTexts = new Set([...eog].map((id) => texts[id]));
  const hasCall = eogTexts.has('<|call|>') || eogTexts.has('<|calls|>');
  if (eogTexts.has('<|end|>') && hasCall && (eogTexts.has('<|return|>') || eogTexts.has('<|flush|>'))) {
    const endId = [...eog].find((id) => texts[id] === '<|end|>')!;
    eog.delete(endId);
    attrs[endId] = ATTR.USER_DEFINED;
  }
  // gemma4 / paddleocr: </s> is no EOG when <|tool_response> is
  if (eogTexts.has('<|tool_response>') && eogTexts.has('</s>')) {
    const sId = [...eog].find((id) => texts[id] === '</s>')!;
    eog.delete(sId);
    attrs[sId] = ATTR.NORMAL;
  }

  const specialTokens: number[] = [];
  for (let id = 0; id < n; id++) {
    if (attrs[id] & (ATTR.CONTROL | ATTR.USER_DEFINED | ATTR.UNKNOWN)) specialTokens.push(id);
  }
  const byteLen = new Map(specialTokens.map((id) => [id, utf8ByteLength(texts[id])]));
  specialTokens.sort((a, b) => byteLen.get(b)! - byteLen.get(a)! || a - b);

  // per-model attributes llama.cpp sets by name
  const name = str(meta, 'general.name') ?? '';
  const lname = name.toLowerCase();
  const arch = str(meta, 'general.architecture') ?? '';
  const setAttr = (text: string, bit: number, on: boolean) => {
    const id = tokenToId.get(text);
    if (id !== undefined) attrs[id] = on ? attrs[id] | bit : attrs[id] & ~bit;
  };
  if (['jina-v2-de', 'jina-v2-es', 'jina-v2-code'].some((s) => pre.includes(s)) ||
      ['nomic-bert-moe', 'jina-bert-v3'].some((s) => arch.includes(s))) {
    setAttr('<mask>', ATTR.LSTRIP, true);
  } else if (lname.includes('phi-3') || lname.includes('phi3')) {
    for (const id of specialTokens) attrs[id] |= ATTR.RSTRIP;
    setAttr('</s>', ATTR.RSTRIP, true);
    for (const t of ['<unk>', '<s>', '<|endoftext|>']) setAttr(t, ATTR.RSTRIP, false);
  }

  return {
    type,
    model,
    pre,
    preTokenizer,
    tokens: texts,
    scores,
    attrs,
    tokenToId,
    merges,
    bos,
    eos,
    eot,
    eom,
    unk,
    sep,
    pad,
    addBos,
    addEos,
    addSpacePrefix,
    cleanSpaces,
    ignoreMerges,
    eog,
    specialTokens,
    chatTemplate: str(meta, 'tokenizer.chat_template') ?? null,
    name,
    warnings,
  };
}
