// Byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's llm_tokenizer_bpe_session:
// the text is split into words by the pre-tokenizer; each word's UTF-8 bytes start as
// one symbol each (written with GPT-2's byte characters); repeatedly the adjacent pair
// with the lowest merge rank (leftmost on ties) is merged; a final symbol that is no
// token is written byte by byte.
//
// Symbols are ids: token ids for strings in the vocabulary, extra ids (>= vocabSize)
// for merge results that are not; a merge is found by the pair of ids (PairTable).
// Results are cached per word.

import { MergeQueue, PairTable } from './merge-queue';
import { PreTokenizer } from './pretokenizer';
import { BYTE_TO_CODEPOINT, utf8EncodeInto } from './unicode';
import type { Vocab } from './vocab';

const CACHE_LIMIT = 1 << 16; // entries; the cache is dropped when full
const CACHEABLE = 64; // UTF-16 units: longer pieces rarely come again

export class BpeTokenizer {
  private readonly vocabSize: number;
  private readonly tokenToId: Map<string, number>;
  private readonly pairs: PairTable;
  private readonly byteSymbol = new Int32Array(256);
  /** token of the one-character string of a byte, for bytes that are one UTF-8 byte when encoded */
  private readonly byteToken = new Int32Array(256).fill(-1);
  private readonly ignoreMerges: boolean;
  readonly preTokenizer: PreTokenizer;
  private readonly cache = new Map<string, Int32Array>();

  // per-word buffers, grown as needed
  private bytes: Uint8Array = new Uint8Array(1024);
  private symbol = new Int32Array(256);
  private len = new Int32Array(256);
  private prev = new Int32Array(256);
  private next = new Int32Array(256);
  private readonly queue = new MergeQueue();
  private readonly out: number[] = [];

  constructor(vocab: Vocab) {
    if (!vocab.preTokenizer) throw new Error('BPE vocabulary without pre-tokenizer');
    this.vocabSize = vocab.tokens.length;
    this.tokenToId = vocab.tokenToId;
    this.ignoreMerges = vocab.ignoreMerges;
    this.preTokenizer = new PreTokenizer(vocab.preTokenizer);

    const extra = new Map<string, number>();
    const intern = (s: string): number => {
      let id = this.tokenToId.get(s) ?? extra.get(s);
      if (id === undefined) {
        id = this.vocabSize + extra.size;
        extra.set(s, id);
      }
      return id;
    };
    for (let b = 0; b < 256; b++) {
      const ch = String.fromCharCode(BYTE_TO_CODEPOINT[b]);
      this.byteSymbol[b] = intern(ch);
      if (BYTE_TO_CODEPOINT[b] < 0x80) this.byteToken[b] = this.tokenToId.get(ch) ?? -1;
    }
    this.pairs = new PairTable(vocab.merges.length);
    for (let rank = 0; rank < vocab.merges.length; rank++) {
      const merge = vocab.merges[rank];
      const space = merge.indexOf(' ', 1);
      if (space < 0) continue; // llama.cpp keeps it as ("", ""), which never matches
      const a = merge.slice(0, space);
      const b = merge.slice(space + 1);
      this.pairs.add(intern(a), intern(b), rank, intern(a + b));
    }
  }

  /** Appends the tokens of one text fragment. */
  encode(text: string, output: number[]): void {
    const bounds = this.preTokenizer.split(text);
    for (let w = 0; w + 1 < bounds.length; w++) {
      const start = bounds[w];
      const end = bounds[w + 1];
      const word = start === 0 && end === text.length ? text : text.slice(start, end);
      let ids = this.cache.get(word);
      if (ids === undefined) {
        ids = this.encodeWord(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        if (word.length <= CACHEABLE) this.cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) output.push(ids[i]);
    }
  }

  private encodeWord(word: string): Int32Array {
    const encoded = utf8EncodeInto(word, 0, word.length, this.bytes);
    this.bytes = encoded.bytes;
    const bytes = this.bytes;
    const n = encoded.length;

    if (this.ignoreMerges) {
      let s = '';
      for (let i = 0; i < n; i++) s += String.fromCharCode(BYTE_TO_CODEPOINT[bytes[i]]);
      const id = this.tokenToId.get(s);
      if (id !== undefined) return Int32Array.of(id);
    }

    if (this.symbol.length < n) this.growSymbols(n);
    const { symbol, len, prev, next, queue } = this;
    for (let i = 0; i < n; i++) {
      symbol[i] = this.byteSymbol[bytes[i]];
      len[i] = 1;
      prev[i] = i - 1;
      next[i] = i + 1;
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
      if (s < this.vocabSize) {
        out.push(s);
        continue;
      }
      // a merge result that is no token: llama.cpp looks up each byte of its text
      // alone, which finds only the printable ASCII byte characters
      for (let j = i; j < i + len[i]; j++) {
        const t = this.byteToken[bytes[j]];
        if (t >= 0) out.push(t);
      }
    }
    return Int32Array.from(out);
  }

  private queuePair(l: number, r: number): void {
    if (l < 0 || r < 0) return;
    const slot = this.pairs.find(this.symbol[l], this.symbol[r]);
    if (slot < 0) return;
    this.queue.push(-this.pairs.value1(slot), l, r, this.len[l] + this.len[r], this.pairs.value2(slot));
  }

  private growSymbols(n: number): void {
    const cap = Math.max(n, this.symbol.length * 2);
    this.symbol = new Int32Array(cap);
    this.len = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.next = new Int32Array(cap);
  }
}
