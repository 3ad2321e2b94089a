// Every token's piece (llama.cpp's token_to_piece, special = true) as bytes, back
// to back in one array, with what a detokenizer needs beside them: which tokens
// are hidden unless special tokens are asked for, the end-of-generation ids and
// the two flags that shape a decoded text. Built once per model on the main
// thread (detokenizer.ts buildPieceTable), in SharedArrayBuffers: the engine
// workers detokenize from the same memory instead of each loading the whole
// vocabulary (token strings, the text -> id map, scores: ~5 MB of V8 heap per
// worker for a 32k vocabulary), and no piece cache grows as new tokens come up.
// This module imports nothing, so a worker loads no tokenizer code.

/** The table's memory: plain data that crosses to a worker (SharedArrayBuffers are shared, not copied). */
export interface PieceTableData {
  /** the pieces back to back: token i's is bytes[offsets[i], offsets[i + 1]) */
  bytes: Uint8Array;
  offsets: Int32Array;
  /** 1 for control and unknown tokens: no text unless special tokens are asked for */
  hidden: Uint8Array;
  /** end-of-generation token ids */
  eog: Int32Array;
  /** the first piece of a text loses its leading space */
  addSpacePrefix: boolean;
  /** llama.cpp's clean-up of tokenization spaces applies to decoded text */
  cleanSpaces: boolean;
}

const EMPTY = new Uint8Array(0);

export class PieceTable {
  readonly vocabSize: number;
  readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
  private readonly bytes: Uint8Array;
  private readonly offsets: Int32Array;
  private readonly hidden: Uint8Array;
  private readonly eog: Set<number>;

  constructor(readonly data: PieceTableData) {
    const n = data.offsets.length - 1;
    if (n < 0 || data.hidden.length !== n || data.offsets[n] !== data.bytes.length) {
      throw new Error(`piece table: ${data.offsets.length} offsets, ${data.hidden.length} flags and ${data.bytes.length} bytes do not agree`);
    }
    this.vocabSize = n;
    this.bytes = data.bytes;
    this.offsets = data.offsets;
    this.hidden = data.hidden;
    this.eog = new Set(data.eog);
    this.addSpacePrefix = data.addSpacePrefix;
    this.cleanSpaces = data.cleanSpaces;
  }

  /** Whether `id` is a token of this vocabulary (an integer in [0, vocabSize)). */
  has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize;
  }

  /** The piece of token `id` (a view of the table: don't modify); empty for a hidden token unless `special`. `id` must be valid (has()). */
  piece(id: number, special: boolean): Uint8Array {
    if (!special && this.hidden[id] !== 0) return EMPTY;
    return this.bytes.subarray(this.offsets[id], this.offsets[id + 1]);
  }

  /** Bytes of piece(id, special), without making a view. */
  pieceLength(id: number, special: boolean): number {
    if (!special && this.hidden[id] !== 0) return 0;
    return this.offsets[id + 1] - this.offsets[id];
  }

  /** The first byte of piece(id, special), or -1 when it is empty. */
  firstByte(id: number, special: boolean): number {
    return this.pieceLength(id, special) > 0 ? this.bytes[this.offsets[id]] : -1;
  }

  /** Copies piece(id, special) to out[at..] (skipping its first `skip` bytes); returns the bytes copied. */
  copyPiece(id: number, special: boolean, out: Uint8Array, at: number, skip = 0): number {
    const len = this.pieceLength(id, special) - skip;
    if (len <= 0) return 0;
    out.set(this.bytes.subarray(this.offsets[id] + skip, this.offsets[id + 1]), at);
    return len;
  }

  isEndOfGeneration(id: number): boolean {
    return this.eog.has(id);
  }

  /** The longest piece, in bytes. */
  maxPieceBytes(): number {
    let longest = 0;
    for (let i = 0; i < this.vocabSize; i++) longest = Math.max(longest, this.offsets[i + 1] - this.offsets[i]);
    return longest;
  }
}

/** A table from each token's piece; the memory is shared (SharedArrayBuffer) so workers can read it in place. */
export function pieceTableOf(
  n: number,
  pieceOf: (id: number) => Uint8Array,
  hiddenOf: (id: number) => boolean,
  eog: Iterable<number>,
  flags: { addSpacePrefix: boolean; cleanSpaces: boolean },
): PieceTable {
  const offsets = new Int32Array(new SharedArrayBuffer(4 * (n + 1)));
  const hidden = new Uint8Array(new SharedArrayBuffer(Math.max(n, 1)), 0, n);
  let staging = new Uint8Array(Math.max(1024, n * 8));
  let total = 0;
  for (let id = 0; id < n; id++) {
    const p = pieceOf(id);
    if (total + p.length > staging.length) {
      const bigger = new Uint8Array(Math.max(staging.length * 2, total + p.length));
      bigger.set(staging.subarray(0, total));
      staging = bigger;
    }
    staging.set(p, total);
    total += p.length;
    offsets[id + 1] = total;
    hidden[id] = hiddenOf(id) ? 1 : 0;
  }
  const bytes = new Uint8Array(new SharedArrayBuffer(Math.max(total, 1)), 0, total);
  bytes.set(staging.subarray(0, total));
  const eogIds = [...eog].sort((a, b) => a - b);
  const eogShared = new Int32Array(new SharedArrayBuffer(Math.max(4 * eogIds.length, 4)), 0, eogIds.length);
  eogShared.set(eogIds);
  return new PieceTable({ bytes, offsets, hidden, eog: eogShared, addSpacePrefix: flags.addSpacePrefix, cleanSpaces: flags.cleanSpaces });
}
