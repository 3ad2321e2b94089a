// Token ids -> text, as llama.cpp's token_to_piece / detokenize: each token's piece
// (SPM: "▁" -> " ", byte tokens <0xXX> -> that byte; BPE: GPT-2 byte characters ->
// bytes), control and unknown tokens only when `special` is asked for, the leading
// space of the first piece dropped when the vocabulary adds a space prefix, and
// llama.cpp's clean-up of tokenization spaces for the BPE pre-tokenizers that use it.

import { ATTR, type Vocab } from './vocab';
import { CODEPOINT_TO_BYTE, utf8Encode } from './unicode';
import { TokenizerError } from './errors';

const SPACE_MARK = /\u2581/g;
// ignoreBOM: a U+FEFF the tokens spell is text, not a byte order mark to drop
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** llama.cpp's detokenize(): clean_spaces, written as the three passes it makes. */
export function cleanTokenizationSpaces(text: string): string {
  return text
    .replace(/ (?=[?!.,])/g, '') // " ?", " !", " .", " ,"
    .replace(/ ' /g, "'") // a single apostrophe between spaces
    .replace(/ '(?=s|m|re|ve)/g, "'"); // " 's", " 'm", " 're", " 've"
}

export class Detokenizer {
  /** pieces as llama.cpp's cache has them (special = true), made on first use */
  private readonly pieces: (Uint8Array | undefined)[];
  private static readonly EMPTY = new Uint8Array(0);
  readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
  readonly vocabSize: number;

  constructor(private readonly vocab: Vocab) {
    this.vocabSize = vocab.tokens.length;
    this.addSpacePrefix = vocab.addSpacePrefix;
    this.cleanSpaces = vocab.cleanSpaces;
    this.pieces = new Array(this.vocabSize);
  }

  checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError('TOKEN_OUT_OF_RANGE', `token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /** The piece of one token (a view: don't modify); empty for a hidden token unless special. */
  piece(id: number, special: boolean): Uint8Array {
    this.checkId(id);
    const attr = this.vocab.attrs[id];
    if (!special && attr & (ATTR.UNKNOWN | ATTR.CONTROL)) return Detokenizer.EMPTY;
    let p = this.pieces[id];
    if (p === undefined) {
      p = tokenPiece(this.vocab, id, attr);
      this.pieces[id] = p;
    }
    return p;
  }

  decode(ids: ArrayLike<number>, special: boolean): string {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.piece(ids[i], special).length;
    const buf = new Uint8Array(total);
    let n = 0;
    let removeSpace = this.addSpacePrefix;
    for (let i = 0; i < ids.length; i++) {
      let p = this.piece(ids[i], special);
      if (removeSpace && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
      removeSpace = false;
      buf.set(p, n);
      n += p.length;
    }
    const text = utf8.decode(buf.subarray(0, n));
    return this.cleanSpaces ? cleanTokenizationSpaces(text) : text;
  }
}

function tokenPiece(vocab: Vocab, id: number, attr: number): Uint8Array {
  const text = vocab.tokens[id];
  if (attr & (ATTR.UNKNOWN | ATTR.CONTROL | ATTR.USER_DEFINED)) return utf8Encode(text);
  if (attr & ATTR.NORMAL) {
    return vocab.type === 'spm' ? utf8Encode(text.replace(SPACE_MARK, ' ')) : gpt2Bytes(text);
  }
  if (attr & ATTR.BYTE) return Uint8Array.of(parseInt(text.slice(3, 5), 16) & 0xff); // "<0xXX>"
  return new Uint8Array(0); // undefined and unused tokens have no text
}

/** GPT-2 byte characters -> bytes; a character that is no byte is shown as llama.cpp does. */
function gpt2Bytes(text: string): Uint8Array {
  const out: number[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    const b = c < CODEPOINT_TO_BYTE.length ? CODEPOINT_TO_BYTE[c] : -1;
    if (b >= 0) out.push(b);
    else {
      const hex = [...utf8Encode(ch)].map((x) => x.toString(16).padStart(2, '0')).join('');
      out.push(...utf8Encode(`[UNK_BYTE_0x${hex}${text}]`));
    }
  }
  return Uint8Array.from(out);
}
