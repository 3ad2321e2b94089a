// The chunk a generation is gathering, kept as bytes, and its GenerateResponse
// encoded by hand: tokens arrive from the step ring as numbers and UTF-8 bytes
// and go out as protobuf without a JS object or string per token. The buffers
// are reused for the generation's life (they grow to the largest chunk); the
// only allocation is the Buffer of each message. The bytes are exactly what
// the generated GenerateResponse.encode writes for the same chunk.

const TAG_REQUEST_ID = 0x0a; // GenerateResponse.request_id = 1, length-delimited
const TAG_CHUNK = 0x12; // GenerateResponse.chunk = 2
const TAG_TOKEN_IDS = 0x0a; // Chunk.token_ids = 1, packed
const TAG_TEXT = 0x12; // Chunk.text = 2
const TAG_INDEX = 0x18; // Chunk.index = 3, varint
const TAG_LOGPROBS = 0x22; // Chunk.logprobs = 4
const TAG_RAW = 0x2a; // Chunk.raw = 5
const TAG_LP_TOKEN = 0x08; // TokenLogprob.token_id = 1 (also TopLogprob.token_id)
const TAG_LP_VALUE = 0x15; // TokenLogprob.logprob = 2, fixed32 (also TopLogprob.logprob)
const TAG_LP_TOP = 0x1a; // TokenLogprob.top = 3

const f32Bytes = new Uint8Array(4);
const f32View = new DataView(f32Bytes.buffer);

/** Bytes of `v` (an unsigned 32-bit value) as a varint. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function writeVarint(b: Uint8Array, p: number, v: number): number {
  while (v >= 0x80) {
    b[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  b[p++] = v;
  return p;
}

/** Encoded size of a TopLogprob / TokenLogprob without its alternatives. */
function pairSize(token: number, logprob: number): number {
  return (token !== 0 ? 1 + varintSize(token) : 0) + (logprob !== 0 ? 5 : 0);
}

export class PendingChunk {
  private tokens = new Uint32Array(16);
  /** Tokens gathered. */
  count = 0;
  private text = new Uint8Array(64);
  private textBytes = 0;
  /** Encoded Chunk.logprobs entries, each with its tag and length. */
  private logprobs = new Uint8Array(0);
  private lpBytes = 0;
  private raw = new Uint8Array(0);
  private rawBytes = 0;

  get empty(): boolean {
    return this.count === 0 && this.textBytes === 0;
  }

  addToken(id: number): void {
    if (this.count === this.tokens.length) this.tokens = grow(this.tokens, this.count + 1);
    this.tokens[this.count++] = id;
  }

  addText(src: Uint8Array, start: number, length: number): void {
    if (this.textBytes + length > this.text.length) this.text = grow(this.text, this.textBytes + length);
    const t = this.text;
    let p = this.textBytes;
    for (let i = start, end = start + length; i < end; i++) t[p++] = src[i];
    this.textBytes = p;
  }

  addRaw(bytes: Uint8Array): void {
    if (this.rawBytes + bytes.length > this.raw.length) this.raw = grow(this.raw, this.rawBytes + bytes.length);
    this.raw.set(bytes, this.rawBytes);
    this.rawBytes += bytes.length;
  }

  /**
   * A TokenLogprob: the token's logprob is values[at], its `count - 1`
   * alternatives' logprobs follow it, their ids are ids[idsAt...].
   */
  addLogprob(token: number, values: Float32Array, at: number, count: number, ids: Int32Array | null, idsAt: number): void {
    const logprob = values[at];
    let body = pairSize(token, logprob);
    for (let i = 1; i < count; i++) {
      const n = pairSize(ids![idsAt + i - 1], values[at + i]);
      body += 1 + varintSize(n) + n;
    }
    const need = 1 + varintSize(body) + body;
    if (this.lpBytes + need > this.logprobs.length) this.logprobs = grow(this.logprobs, this.lpBytes + need);
    const b = this.logprobs;
    let p = this.lpBytes;
    b[p++] = TAG_LOGPROBS;
    p = writeVarint(b, p, body);
    p = writePair(b, p, token, logprob);
    for (let i = 1; i < count; i++) {
      const id = ids![idsAt + i - 1];
      const v = values[at + i];
      b[p++] = TAG_LP_TOP;
      p = writeVarint(b, p, pairSize(id, v));
      p = writePair(b, p, id, v);
    }
    this.lpBytes = p;
  }

  /** The GenerateResponse {request_id, chunk} of what is gathered; `index`: the chunk's first token's position. */
  encode(requestId: Uint8Array, index: number): Buffer {
    let packed = 0;
    for (let i = 0; i < this.count; i++) packed += varintSize(this.tokens[i]);
    let chunk = 0;
    if (this.count > 0) chunk += 1 + varintSize(packed) + packed;
    if (this.textBytes > 0) chunk += 1 + varintSize(this.textBytes) + this.textBytes;
    if (index !== 0) chunk += 1 + varintSize(index);
    chunk += this.lpBytes;
    if (this.rawBytes > 0) chunk += 1 + varintSize(this.rawBytes) + this.rawBytes;
    const idPart = requestId.length > 0 ? 1 + varintSize(requestId.length) + requestId.length : 0;
    const out = Buffer.allocUnsafe(idPart + 1 + varintSize(chunk) + chunk);
    let p = 0;
    if (idPart > 0) {
      out[p++] = TAG_REQUEST_ID;
      p = writeVarint(out, p, requestId.length);
      for (let i = 0; i < requestId.length; i++) out[p++] = requestId[i];
    }
    out[p++] = TAG_CHUNK;
    p = writeVarint(out, p, chunk);
    if (this.count > 0) {
      out[p++] = TAG_TOKEN_IDS;
      p = writeVarint(out, p, packed);
      for (let i = 0; i < this.count; i++) p = writeVarint(out, p, this.tokens[i]);
    }
    if (this.textBytes > 0) {
      out[p++] = TAG_TEXT;
      p = writeVarint(out, p, this.textBytes);
      for (let i = 0; i < this.textBytes; i++) out[p++] = this.text[i];
    }
    if (index !== 0) {
      out[p++] = TAG_INDEX;
      p = writeVarint(out, p, index);
    }
    for (let i = 0; i < this.lpBytes; i++) out[p++] = this.logprobs[i];
    if (this.rawBytes > 0) {
      out[p++] = TAG_RAW;
      p = writeVarint(out, p, this.rawBytes);
      for (let i = 0; i < this.rawBytes; i++) out[p++] = this.raw[i];
    }
    return out;
  }

  clear(): void {
    this.count = 0;
    this.textBytes = 0;
    this.lpBytes = 0;
    this.rawBytes = 0;
  }
}

function writePair(b: Uint8Array, p: number, token: number, logprob: number): number {
  if (token !== 0) {
    b[p++] = TAG_LP_TOKEN;
    p = writeVarint(b, p, token);
  }
  if (logprob !== 0) {
    b[p++] = TAG_LP_VALUE;
    f32View.setFloat32(0, logprob, true); // fixed32: little-endian
    b[p++] = f32Bytes[0];
    b[p++] = f32Bytes[1];
    b[p++] = f32Bytes[2];
    b[p++] = f32Bytes[3];
  }
  return p;
}

function grow<T extends Uint32Array | Uint8Array>(a: T, need: number): T {
  let n = Math.max(16, a.length * 2);
  while (n < need) n *= 2;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
