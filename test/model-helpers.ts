// Shared by the model / forward / parity tests: fixture paths, batch building
// and log-softmax.
import * as path from 'node:path';
import { createBatch, GREEDY_SAMPLING, Session } from '../server/src/engine/model';
import type { Batch } from '../server/src/engine/types';

export const FIXTURES = path.join(__dirname, 'fixtures');
export const TINY_MODEL = path.join(FIXTURES, 'models/llama-2-tiny-random.gguf');
export const REFERENCE_DIR = path.join(FIXTURES, 'reference');

export const GREEDY = GREEDY_SAMPLING;

export interface Entry {
  seq: number;
  token: number;
  pos: number;
  logits: boolean;
}

export function batchOf(entries: Entry[]): Batch {
  const b = createBatch(entries.length);
  entries.forEach((e, i) => {
    b.seq[i] = e.seq;
    b.token[i] = e.token;
    b.pos[i] = e.pos;
    b.logits[i] = e.logits ? 1 : 0;
  });
  b.length = entries.length;
  return b;
}

/** Entries for tokens of one sequence from position `start`; logits on the last only, or on all. */
export function seqEntries(seq: number, tokens: number[], start: number, logits: 'last' | 'all' = 'last'): Entry[] {
  return tokens.map((token, i) => ({ seq, token, pos: start + i, logits: logits === 'all' || i === tokens.length - 1 }));
}

/** Copies of the logits rows of one decode (the returned array is a view, reused by the next decode). */
export function decodeRows(session: Session, entries: Entry[]): Float32Array[] {
  const flat = session.decode(batchOf(entries));
  const v = session.vocabSize;
  const rows: Float32Array[] = [];
  for (let r = 0; r * v < flat.length; r++) rows.push(flat.slice(r * v, (r + 1) * v));
  return rows;
}

export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const lz = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i] - lz;
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}
