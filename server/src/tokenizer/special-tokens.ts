// Splitting text at special tokens before tokenizing, as llama.cpp's
// tokenizer_st_partition: control / user-defined / unknown tokens are cut out of the
// text, longest token text first; control and unknown tokens only when the request
// parses special tokens, user-defined ones always (as Hugging Face tokenizers do).

import { ATTR, type Vocab } from './vocab';
import { isAsciiSpace } from './unicode';

/** A piece of the input: a token id, or raw text [start, end) to tokenize. */
export interface Fragment {
  token: number; // -1 for raw text
  start: number;
  end: number;
}

export class SpecialTokenSplitter {
  private readonly texts: string[];
  private readonly attrs: Uint16Array;
  /** special tokens by their first two UTF-16 units (c0 * 65536 + c1) */
  private readonly byPrefix = new Map<number, number[]>();
  /** special tokens whose text is one UTF-16 unit, by that unit */
  private readonly byUnit = new Map<number, number[]>();
  private readonly order: Map<number, number>;
  /** 1 at the first UTF-16 unit of some special token: a quick filter for the scan */
  private readonly firstUnit = new Uint8Array(0x10000);
  private readonly hasAlwaysMatched: boolean;

  constructor(vocab: Vocab) {
    this.texts = vocab.tokens;
    this.attrs = vocab.attrs;
    this.order = new Map(vocab.specialTokens.map((id, i) => [id, i]));
    let always = false;
    for (const id of vocab.specialTokens) {
      const t = vocab.tokens[id];
      this.firstUnit[t.charCodeAt(0)] = 1;
      const map = t.length >= 2 ? this.byPrefix : this.byUnit;
      const key = t.length >= 2 ? t.charCodeAt(0) * 65536 + t.charCodeAt(1) : t.charCodeAt(0);
      const list = map.get(key);
      if (list) list.push(id);
      else map.set(key, [id]);
      if (!(vocab.attrs[id] & (ATTR.CONTROL | ATTR.UNKNOWN))) always = true;
    }
    this.hasAlwaysMatched = always;
  }

  partition(text: string, parseSpecial: boolean): Fragment[] {
    if (text.length === 0) return [];
    const whole: Fragment[] = [{ token: -1, start: 0, end: text.length }];
    if (this.order.size === 0 || (!parseSpecial && !this.hasAlwaysMatched)) return whole;
    const present = this.tokensIn(text, parseSpecial);
    if (present.length === 0) return whole;

    let fragments = whole;
    for (const id of present) {
      const tok = this.texts[id];
      const attr = this.attrs[id];
      const next: Fragment[] = [];
      for (const f of fragments) {
        if (f.token >= 0) {
          next.push(f);
          continue;
        }
        let start = f.start;
        const end = f.end;
        for (;;) {
          const match = text.indexOf(tok, start);
          if (match < 0 || match + tok.length > end) {
            if (start < end) next.push({ token: -1, start, end });
            break;
          }
          let leftEnd = match;
          if (attr & ATTR.LSTRIP) while (leftEnd > start && isAsciiSpace(text.charCodeAt(leftEnd - 1))) leftEnd--;
          if (leftEnd > start) next.push({ token: -1, start, end: leftEnd });
          next.push({ token: id, start: match, end: match + tok.length });
          start = match + tok.length;
          if (attr & ATTR.RSTRIP) while (start < end && isAsciiSpace(text.charCodeAt(start))) start++;
          if (start >= end) break;
        }
      }
      fragments = next;
    }
    return fragments;
  }

  /** The special tokens that occur in text (and apply), in llama.cpp's order. */
  private tokensIn(text: string, parseSpecial: boolean): number[] {
    const found = new Set<number>();
    const n = text.length;
    for (let i = 0; i < n; i++) {
      const c0 = text.charCodeAt(i);
      if (this.firstUnit[c0] === 0) continue;
      const single = this.byUnit.get(c0);
      if (single) for (const id of single) found.add(id);
      if (i + 1 < n) {
        const list = this.byPrefix.get(c0 * 65536 + text.charCodeAt(i + 1));
        if (list) for (const id of list) if (!found.has(id) && text.startsWith(this.texts[id], i)) found.add(id);
      }
    }
    const ids = [...found].filter((id) => parseSpecial || !(this.attrs[id] & (ATTR.CONTROL | ATTR.UNKNOWN)));
    return ids.sort((a, b) => this.order.get(a)! - this.order.get(b)!);
  }
}
