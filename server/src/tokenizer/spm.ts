// SentencePiece-style BPE by scores (tokenizer.ggml.model = "llama"), as llama.cpp's
// llm_tokenizer_spm_session: the text (spaces written as U+2581 "▁") starts as one
// symbol per code point; repeatedly the adjacent pair whose concatenation is the
// highest-scoring token (leftmost on ties) is merged; symbols that are no token are
// written as byte tokens <0xXX>.
//
// Speed without changing results:
// - A merge is looked up by the pair of symbol ids (PairTable built once from every
//   split of every token text), not by concatenating strings.
// - The text is cut before each "▁" that no token can reach across (no token holds
//   that character followed by "▁"); merges never cross such a cut, and the order of
//   merges inside a piece is the same as in the whole text, so pieces are encoded
//   independently and cached.

import { MergeQueue, PairTable } from './merge-queue';
import { TokenizerError } from './errors';
import type { Vocab } from './vocab';

const SPACE_MARK = 0x2581; // ▁
const CACHE_LIMIT = 1 << 16; // entries; the cache is dropped when full
const CACHEABLE = 64; // UTF-16 units: longer pieces rarely come again

export class SpmTokenizer {
  private readonly vocabSize: number;
  private readonly scores: Float32Array;
  /** code point -> symbol id (token id, or an extra id >= vocabSize); -1 = no merges */
  private readonly bmpSymbol = new Int32Array(0x10000).fill(-1);
  private readonly astralSymbol = new Map<number, number>();
  private readonly pairs: PairTable;
  /** code points that some token holds right before a "▁" (cuts are not safe after them) */
  private readonly reachesIntoSpace = new Set<number>();
  private readonly byteTokens = new Int32Array(256).fill(-1);
  private readonly unk: number | null;
  private readonly cache = new Map<string, Int32Array>();

  // per-segment buffers, grown as needed
  private symbol = new Int32Array(256);
  private len = new Int32Array(256);
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private cp = new Int32Array(256);
  private readonly queue = new MergeQueue();
  private readonly out: number[] = [];

  constructor(vocab: Vocab) {
    this.vocabSize = vocab.tokens.length;
    this.scores = vocab.scores;
    this.unk = vocab.unk;
    let nextExtra = this.vocabSize;
    const symbolOfChar = (c: number, create: boolean): number => {
      let id = c < 0x10000 ? this.bmpSymbol[c] : this.astralSymbol.get(c) ?? -1;
      if (id === -1 && create) {
        id = vocab.tokenToId.get(String.fromCodePoint(c)) ?? nextExtra++;
        if (c < 0x10000) this.bmpSymbol[c] = id;
        else this.astralSymbol.set(c, id);
      }
      return id;
    };
    // every single-character token is a symbol
    vocab.tokenToId.forEach((id, text) => {
      const c = text.codePointAt(0)!;
      if (text.length === (c > 0xffff ? 2 : 1)) symbolOfChar(c, true);
    });
    // ~2 pairs per token (Llama-2's 32k vocabulary: 61 249): sized for that, the
    // table is 2 MB instead of 4 MB; it grows by itself if a vocabulary has more.
    this.pairs = new PairTable(vocab.tokens.length * 2);
    const offsets: number[] = [];
    for (let id = 0; id < this.vocabSize; id++) {
      const text = vocab.tokens[id];
      if (vocab.tokenToId.get(text) !== id) continue; // a duplicate text
      offsets.length = 0;
      for (let i = 0; i < text.length; ) {
        offsets.push(i);
        const c = text.codePointAt(i)!;
        if (c === SPACE_MARK && i > 0) {
          const p = text.codePointAt(offsets[offsets.length - 2])!;
          if (p !== SPACE_MARK) this.reachesIntoSpace.add(p);
        }
        i += c > 0xffff ? 2 : 1;
      }
      const m = offsets.length;
      offsets.push(text.length);
      // every split text = x + y where x and y are symbols (tokens or single characters)
      for (let k = 1; k < m; k++) {
        const x = k === 1 ? symbolOfChar(text.codePointAt(0)!, true) : vocab.tokenToId.get(text.slice(0, offsets[k]));
        if (x === undefined) continue;
        const y =
          k === m - 1 ? symbolOfChar(text.codePointAt(offsets[k])!, true) : vocab.tokenToId.get(text.slice(offsets[k]));
        if (y === undefined) continue;
        this.pairs.add(x, y, id, 0);
      }
    }
    for (let b = 0; b < 256; b++) {
      const hex = b.toString(16).toUpperCase().padStart(2, '0');
      this.byteTokens[b] = vocab.tokenToId.get(`<0x${hex}>`) ?? vocab.tokenToId.get(String.fromCharCode(b)) ?? -1;
    }
  }

  /**
   * Appends the tokens of one text fragment. `text` is the fragment as the user
   * wrote it (with the add-space-prefix space already in front when it applies).
   */
  encode(text: string, output: number[]): void {
    // cut into independently mergeable pieces
    let start = 0;
    let prevCp = -1;
    for (let i = 0; i < text.length; ) {
      let c = text.codePointAt(i)!;
      const width = c > 0xffff ? 2 : 1;
      if (c === 0x20) c = SPACE_MARK;
      if (c === SPACE_MARK && i > start && prevCp !== SPACE_MARK && !this.reachesIntoSpace.has(prevCp)) {
        this.encodePiece(text, start, i, output);
        start = i;
      }
      prevCp = c;
      i += width;
    }
    if (start < text.length) this.encodePiece(text, start, text.length, output);
  }

  private encodePiece(text: string, start: number, end: number, output: number[]): void {
    const key = start === 0 && end === text.length ? text : text.slice(start, end);
    let ids = this.cache.get(key);
    if (ids === undefined) {
      ids = this.merge(key);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      if (key.length <= CACHEABLE) this.cache.set(key, ids);
    }
    for (let i = 0; i < ids.length; i++) output.push(ids[i]);
  }

  private merge(piece: string): Int32Array {
    if (this.symbol.length < piece.length) this.growSymbols(piece.length);
    const { symbol, len, prev, next, cp, queue } = this;
    let n = 0;
    for (let i = 0; i < piece.length; ) {
      let c = piece.codePointAt(i)!;
      i += c > 0xffff ? 2 : 1;
      if (c === 0x20) c = SPACE_MARK;
      cp[n] = c;
      symbol[n] = c < 0x10000 ? this.bmpSymbol[c] : this.astralSymbol.get(c) ?? -1;
      len[n] = 1;
      prev[n] = n - 1;
      next[n] = n + 1;
      n++;
    }
    next[n - 1] = -1;

    queue.clear();
    for (let i = 1; i < n; i++) this.queuePair(i - 1, i);
    while (queue.length > 0) {
      const e = queue.pop();
      const l = queue.left[e];
      const r = queue.right[e];
      // stale: one side was merged away or grew since the pair was queued
      if (len[l] === 0 || len[r] === 0 || len[l] + len[r] !== queue.check[e]) continue;
      symbol[l] = queue.value[e];
      len[l] += len[r];
      len[r] = 0;
      next[l] = next[r];
      if (next[r] >= 0) prev[next[r]] = l;
      this.queuePair(prev[l], l);
      this.queuePair(l, next[l]);
    }

    const out = this.out;
    out.length = 0;
    for (let i = 0; i !== -1; i = next[i]) {
      const s = symbol[i];
      if (s >= 0 && s < this.vocabSize) {
        out.push(s);
        continue;
      }
      // not a token: a single code point, written as its UTF-8 bytes
      this.pushBytes(cp[i], out);
    }
    return Int32Array.from(out);
  }

  private queuePair(l: number, r: number): void {
    if (l < 0 || r < 0) return;
    const slot = this.pairs.find(this.symbol[l], this.symbol[r]);
    if (slot < 0) return;
    const token = this.pairs.value1(slot);
    this.queue.push(this.scores[token], l, r, this.len[l] + this.len[r], token);
  }

  private pushBytes(c: number, out: number[]): void {
    if (c < 0x80) this.pushByte(c, out);
    else if (c < 0x800) {
      this.pushByte(0xc0 | (c >> 6), out);
      this.pushByte(0x80 | (c & 63), out);
    } else if (c < 0x10000) {
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd; // lone surrogate
      this.pushByte(0xe0 | (c >> 12), out);
      this.pushByte(0x80 | ((c >> 6) & 63), out);
      this.pushByte(0x80 | (c & 63), out);
    } else {
      this.pushByte(0xf0 | (c >> 18), out);
      this.pushByte(0x80 | ((c >> 12) & 63), out);
      this.pushByte(0x80 | ((c >> 6) & 63), out);
      this.pushByte(0x80 | (c & 63), out);
    }
  }

  private pushByte(b: number, out: number[]): void {
    const id = this.byteTokens[b];
    if (id >= 0) out.push(id);
    else if (this.unk !== null) out.push(this.unk);
    else {
      throw new TokenizerError(
        'TOKENIZER_INVALID',
        `the vocabulary has no token for byte 0x${b.toString(16)} and no unknown token`,
      );
    }
  }

  private growSymbols(n: number): void {
    const cap = Math.max(n, this.symbol.length * 2);
    this.symbol = new Int32Array(cap);
    this.len = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.cp = new Int32Array(cap);
  }
}
