// UTF-8 helpers and GPT-2's byte <-> printable-character table.

/**
 * GPT-2 byte-level BPE writes every byte as one printable code point: the
 * printable Latin-1 bytes stand for themselves, the other 68 bytes are moved
 * to U+0100.. in byte order. Index = byte, value = code point.
 */
export const BYTE_TO_CODEPOINT: Uint16Array = (() => {
  const table = new Uint16Array(256);
  const direct = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = direct(b) ? b : next++;
  return table;
})();

/** Inverse of BYTE_TO_CODEPOINT over 0..0x143; -1 where a code point is no byte. */
export const CODEPOINT_TO_BYTE: Int16Array = (() => {
  const table = new Int16Array(0x144).fill(-1);
  for (let b = 0; b < 256; b++) table[BYTE_TO_CODEPOINT[b]] = b;
  return table;
})();

const encoder = new TextEncoder();

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

export function utf8ByteLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3; // lone surrogate -> U+FFFD
    } else n += 3;
  }
  return n;
}

/**
 * Writes the UTF-8 bytes of text[start, end) into out (grown when short) and
 * returns the byte count and the buffer. Lone surrogates become U+FFFD, as
 * TextEncoder does. No allocation unless the buffer must grow.
 */
export function utf8EncodeInto(
  text: string,
  start: number,
  end: number,
  out: Uint8Array,
): { bytes: Uint8Array; length: number } {
  if (out.length < (end - start) * 3) out = new Uint8Array((end - start) * 3 + 16);
  let n = 0;
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
      continue;
    }
    if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 63);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < end ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        out[n++] = 0xf0 | (cp >> 18);
        out[n++] = 0x80 | ((cp >> 12) & 63);
        out[n++] = 0x80 | ((cp >> 6) & 63);
        out[n++] = 0x80 | (cp & 63);
        continue;
      }
      c = 0xfffd;
    }
    out[n++] = 0xe0 | (c >> 12);
    out[n++] = 0x80 | ((c >> 6) & 63);
    out[n++] = 0x80 | (c & 63);
  }
  return { bytes: out, length: n };
}

/** Code point count of a string (surrogate pairs count once). */
export function codePointLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** C's isspace() in the "C" locale, which llama.cpp uses for lstrip/rstrip. */
export function isAsciiSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}
