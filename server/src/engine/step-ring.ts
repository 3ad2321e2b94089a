// Step reports from an engine worker to the main thread without serialisation:
// the worker writes each step's report as a binary frame into a ring in a
// SharedArrayBuffer, and the main thread reads the frames in place.
//
// A frame (little-endian, 8-byte aligned; offsets in bytes):
//    0 i32 frame bytes (-1: wrap marker, the next frame is at 0)
//    4 i32 entries
//    8 f64 time the step's tokens left the engine (nowMs())
//   16 f64 step duration (ms)
//   24 i32 tokens fed to the engine in the step, 28 i32 sequences they belong to
//   32 i32 logprob floats, 36 i32 alternative ids, 40 i32 text bytes, 44 (pad)
//   48 entries × RECORD_INTS i32 (worker-protocol.ts: Rec), then the logprob
//      floats (f32), the alternative ids (i32), the UTF-8 text of all entries
//      (each entry's slice is Rec.TextLength bytes long), padding to 8.
//
// The ring's header (i32): WRITE and READ offsets into the data area, and
// NOTIFIED. The worker publishes a frame by moving WRITE, then posts a wake-up
// message only if NOTIFIED was 0 (so a main thread that lags behind gets one
// message for many steps); the main thread clears NOTIFIED before reading.
// A frame that does not fit (the main thread is far behind, or a huge frame)
// goes as a transferred ArrayBuffer in a message instead; the main thread
// reads the ring before any other message of the worker, so order is kept.
import { RECORD_INTS } from './worker-protocol';

const WRITE = 0;
const READ = 1;
const NOTIFIED = 2;
const HEADER_BYTES = 64;
export const FRAME_HEADER_BYTES = 48;
/** Default ring size per worker: steps of a lagging main thread wait here. */
export const DEFAULT_RING_BYTES = 1 << 18;

const align8 = (n: number): number => (n + 7) & ~7;

/** A step's entries as they sit in a frame (reused: valid only during the call it is passed to). */
export class StepView {
  /** Views of the whole buffer holding the frame. */
  i32!: Int32Array;
  f32!: Float32Array;
  u8!: Uint8Array;
  count = 0;
  time = 0;
  stepMs = 0;
  batchTokens = 0;
  batchSequences = 0;
  /** i32 index of entry 0 (entry e: records + e * RECORD_INTS). */
  records = 0;
  /** f32 index of the first logprob. */
  logprobs = 0;
  /** i32 index of the first alternative id. */
  topIds = 0;
  /** byte offset of the text. */
  text = 0;

  /** Points this view at the frame at byte `at` of a buffer with views i32/f32/f64/u8; returns the frame's size. */
  load(i32: Int32Array, f32: Float32Array, f64: Float64Array, u8: Uint8Array, at: number): number {
    const base = at >> 2;
    this.i32 = i32;
    this.f32 = f32;
    this.u8 = u8;
    this.count = i32[base + 1];
    this.time = f64[(at >> 3) + 1];
    this.stepMs = f64[(at >> 3) + 2];
    this.batchTokens = i32[base + 6];
    this.batchSequences = i32[base + 7];
    const lps = i32[base + 8];
    const tops = i32[base + 9];
    this.records = base + FRAME_HEADER_BYTES / 4;
    this.logprobs = this.records + this.count * RECORD_INTS;
    this.topIds = this.logprobs + lps;
    this.text = (this.topIds + tops) * 4;
    return i32[base];
  }
}

/** Views of one buffer (the ring's data area, or a fallback frame). */
class Views {
  readonly i32: Int32Array;
  readonly f32: Float32Array;
  readonly f64: Float64Array;
  readonly u8: Uint8Array;
  constructor(buffer: ArrayBufferLike, offset: number, bytes: number) {
    this.i32 = new Int32Array(buffer, offset, bytes >> 2);
    this.f32 = new Float32Array(buffer, offset, bytes >> 2);
    this.f64 = new Float64Array(buffer, offset, bytes >> 3);
    this.u8 = new Uint8Array(buffer, offset, bytes);
  }
}

export function createRing(bytes = DEFAULT_RING_BYTES): SharedArrayBuffer {
  if (bytes < 4096 || bytes % 8 !== 0) throw new Error(`ring size ${bytes}: a multiple of 8, at least 4096`);
  return new SharedArrayBuffer(HEADER_BYTES + bytes);
}

/**
 * Worker side: accumulates one step's entries (buffers reused across steps),
 * then writes them as one frame.
 */
export class StepWriter {
  private readonly header: Int32Array;
  private readonly ring: Views;
  private readonly capacity: number;
  // The step being built.
  private records: Int32Array;
  private count = 0;
  private text: Uint8Array;
  private textBytes = 0;
  private lps: Float32Array;
  private lpCount = 0;
  private tops: Int32Array;
  private topCount = 0;

  constructor(
    ring: SharedArrayBuffer,
    /** Wakes the main thread up (a message); called at most once per read of the main thread. */
    private readonly wake: () => void,
    /** Sends a frame that does not fit in the ring (as a transferred buffer). */
    private readonly sendFrame: (frame: ArrayBuffer) => void,
  ) {
    this.header = new Int32Array(ring, 0, HEADER_BYTES >> 2);
    this.capacity = ring.byteLength - HEADER_BYTES;
    this.ring = new Views(ring, HEADER_BYTES, this.capacity);
    this.records = new Int32Array(64 * RECORD_INTS);
    this.text = new Uint8Array(1024);
    this.lps = new Float32Array(64);
    this.tops = new Int32Array(64);
  }

  get empty(): boolean {
    return this.count === 0;
  }

  /** One entry: `text` is the entry's new text; `lp` its logprob and alternatives when asked for. */
  add(id: number, token: number, finish: number, text: string, stopIndex: number, lp?: { logprob: number; top?: ReadonlyArray<{ token: number; logprob: number }> }): void {
    if ((this.count + 1) * RECORD_INTS > this.records.length) this.records = grow(this.records, (this.count + 1) * RECORD_INTS);
    const o = this.count * RECORD_INTS;
    const textStart = this.textBytes;
    if (text.length > 0) this.appendUtf8(text);
    const r = this.records;
    r[o] = id;
    r[o + 1] = token;
    r[o + 2] = finish;
    r[o + 3] = this.textBytes - textStart;
    r[o + 4] = -1;
    r[o + 5] = stopIndex;
    if (lp) {
      const top = lp.top ?? [];
      r[o + 4] = 1 + top.length;
      if (this.lpCount + 1 + top.length > this.lps.length) this.lps = grow(this.lps, this.lpCount + 1 + top.length);
      if (this.topCount + top.length > this.tops.length) this.tops = grow(this.tops, this.topCount + top.length);
      this.lps[this.lpCount++] = lp.logprob;
      for (let i = 0; i < top.length; i++) {
        this.lps[this.lpCount++] = top[i].logprob;
        this.tops[this.topCount++] = top[i].token;
      }
    }
    this.count++;
  }

  /** Writes the step's frame (into the ring, or as a message when it does not fit) and starts a new step. */
  send(time: number, stepMs: number, batchTokens: number, batchSequences: number): void {
    const size = align8(FRAME_HEADER_BYTES + 4 * (this.count * RECORD_INTS + this.lpCount + this.topCount) + this.textBytes);
    const at = this.reserve(size);
    if (at >= 0) {
      this.writeFrame(this.ring, at, size, time, stepMs, batchTokens, batchSequences);
      Atomics.store(this.header, WRITE, at + size);
      if (Atomics.exchange(this.header, NOTIFIED, 1) === 0) this.wake();
    } else {
      const frame = new ArrayBuffer(size);
      this.writeFrame(new Views(frame, 0, size), 0, size, time, stepMs, batchTokens, batchSequences);
      this.sendFrame(frame);
    }
    this.count = 0;
    this.textBytes = 0;
    this.lpCount = 0;
    this.topCount = 0;
  }

  /**
   * Where a frame of `size` bytes can go, or -1. WRITE never catches up with READ
   * from behind (equal means empty) and stays 8 bytes short of the end, so a
   * wrap marker always fits.
   */
  private reserve(size: number): number {
    if (size > this.capacity >> 1) return -1;
    const w = this.header[WRITE];
    const r = Atomics.load(this.header, READ);
    if (w >= r) {
      if (w + size <= this.capacity - 8) return w;
      if (size + 8 <= r) {
        this.ring.i32[w >> 2] = -1; // published together with the frame at 0
        return 0;
      }
      return -1;
    }
    return w + size + 8 <= r ? w : -1;
  }

  private writeFrame(v: Views, at: number, size: number, time: number, stepMs: number, batchTokens: number, batchSequences: number): void {
    const b = at >> 2;
    const i32 = v.i32;
    i32[b] = size;
    i32[b + 1] = this.count;
    v.f64[(at >> 3) + 1] = time;
    v.f64[(at >> 3) + 2] = stepMs;
    i32[b + 6] = batchTokens;
    i32[b + 7] = batchSequences;
    i32[b + 8] = this.lpCount;
    i32[b + 9] = this.topCount;
    i32[b + 10] = this.textBytes;
    let p = b + FRAME_HEADER_BYTES / 4;
    const n = this.count * RECORD_INTS;
    for (let i = 0; i < n; i++) i32[p++] = this.records[i];
    for (let i = 0; i < this.lpCount; i++) v.f32[p++] = this.lps[i];
    for (let i = 0; i < this.topCount; i++) i32[p++] = this.tops[i];
    let q = p * 4;
    const u8 = v.u8;
    for (let i = 0; i < this.textBytes; i++) u8[q++] = this.text[i];
  }

  /** UTF-8 of `s` appended to the step's text (lone surrogates become U+FFFD, as TextEncoder does). */
  private appendUtf8(s: string): void {
    if (this.textBytes + s.length * 3 > this.text.length) this.text = grow(this.text, this.textBytes + s.length * 3);
    const t = this.text;
    let p = this.textBytes;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) {
        t[p++] = c;
      } else if (c < 0x800) {
        t[p++] = 0xc0 | (c >> 6);
        t[p++] = 0x80 | (c & 0x3f);
      } else {
        if (c >= 0xd800 && c <= 0xdfff) {
          const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
          if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            t[p++] = 0xf0 | (c >> 18);
            t[p++] = 0x80 | ((c >> 12) & 0x3f);
            t[p++] = 0x80 | ((c >> 6) & 0x3f);
            t[p++] = 0x80 | (c & 0x3f);
            continue;
          }
          c = 0xfffd;
        }
        t[p++] = 0xe0 | (c >> 12);
        t[p++] = 0x80 | ((c >> 6) & 0x3f);
        t[p++] = 0x80 | (c & 0x3f);
      }
    }
    this.textBytes = p;
  }
}

/** Main-thread side: reads the frames a worker published, in order. */
export class StepReader {
  private readonly header: Int32Array;
  private readonly ring: Views;
  private readonly view = new StepView();
  private reading = false;

  constructor(
    ring: SharedArrayBuffer,
    private readonly onStep: (step: StepView) => void,
  ) {
    this.header = new Int32Array(ring, 0, HEADER_BYTES >> 2);
    this.ring = new Views(ring, HEADER_BYTES, ring.byteLength - HEADER_BYTES);
  }

  /** After a wake-up message: clears NOTIFIED (later frames wake us again), then reads. */
  woken(): void {
    Atomics.store(this.header, NOTIFIED, 0);
    this.drain();
  }

  /** Hands every published frame to onStep, oldest first. */
  drain(): void {
    if (this.reading) return; // a frame's handler led back here: the outer loop goes on
    this.reading = true;
    try {
      const { i32, f32, f64, u8 } = this.ring;
      let r = this.header[READ];
      for (;;) {
        const w = Atomics.load(this.header, WRITE);
        if (r === w) break;
        if (i32[r >> 2] === -1) {
          r = 0;
          continue;
        }
        const size = this.view.load(i32, f32, f64, u8, r);
        try {
          this.onStep(this.view);
        } finally {
          r += size;
          Atomics.store(this.header, READ, r);
        }
      }
    } finally {
      this.reading = false;
    }
  }

  /** A frame that came as a message (after everything in the ring). */
  frame(buffer: ArrayBuffer): void {
    this.drain();
    const v = new Views(buffer, 0, buffer.byteLength);
    this.view.load(v.i32, v.f32, v.f64, v.u8, 0);
    this.onStep(this.view);
  }
}

function grow<T extends Int32Array | Float32Array | Uint8Array>(a: T, need: number): T {
  let n = a.length * 2;
  while (n < need) n *= 2;
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}
