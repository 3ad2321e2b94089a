// Token ids -> text, as llama.cpp's token_to_piece / detokenize: each token's piece
// (SPM: "▁" -> " ", byte tokens <0xXX> -> that byte; BPE: GPT-2 byte characters ->
// bytes), control and unknown tokens only when `special` is asked for, the leading
// space of the first piece dropped when the vocabulary adds a space prefix, and
// llama.cpp's clean-up of tokenization spaces for the BPE pre-tokenizers that use it.

import { ATTR, type Vocab } from './vocab';
import { CODEPOINT_TO_BYTE, utf8Encode } from './unicode';
import { TokenizerError } from './errors';
import { pieceTableOf, type PieceTable } from './piece-table';

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
  readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
  readonly vocabSize: number;
  private built: PieceTable | undefined;

  constructor(private readonly vocab: Vocab) {
    this.vocabSize = vocab.tokens.length;
    this.addSpacePrefix = vocab.addSpacePrefix;
    this.cleanSpaces = vocab.cleanSpaces;
  }

  /**
   * Every piece, in shared memory the engine workers read too: built on first use
   * (~20-30 ms for a 50k vocabulary; a few hundred KB), not by commands that only encode.
   */
  get table(): PieceTable {
    if (!this.built) {
      const vocab = this.vocab;
      this.built = pieceTableOf(
        this.vocabSize,
        (id) => tokenPiece(vocab, id, vocab.attrs[id]),
        (id) => (vocab.attrs[id] & (ATTR.UNKNOWN | ATTR.CONTROL)) !== 0,
        vocab.eog,
        { addSpacePrefix: vocab.addSpacePrefix, cleanSpaces: vocab.cleanSpaces },
      );
    }
    return this.built;
  }

  checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError('TOKEN_OUT_OF_RANGE', `token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /** The piece of one token (a view: don't modify); empty for a hidden token unless special. */
  piece(id: number, special: boolean): Uint8Array {
    this.checkId(id);
    return this.table.piece(id, special);
  }

  decode(ids: ArrayLike<number>, special: boolean): string {
    const table = this.table;
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      this.checkId(ids[i]);
      total += table.pieceLength(ids[i], special);
    }
    const buf = new Uint8Array(total);
    let n = 0;
    let removeSpace = this.addSpacePrefix;
    for (let i = 0; i < ids.length; i++) {
      const skip = removeSpace && table.firstByte(ids[i], special) === 0x20 ? 1 : 0;
      removeSpace = false;
      n += table.copyPiece(ids[i], special, buf, n, skip);
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
