// The piece table: every token's piece in shared memory, built once by the main
// thread's Tokenizer and read in place by the engine workers (which load no
// vocabulary of their own). Checked against the Tokenizer on both fixture
// vocabularies, in this thread and in a real worker thread.
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PieceTable, StreamDecoder } from '../server/src/tokenizer';
import { readVectors, tokenizerFor, VOCABS } from './tokenizer-helpers';

describe.each(VOCABS)('%s', (name) => {
  const tok = tokenizerFor(name);
  const table = tok.pieceTable;

  test('holds every token piece, in shared memory', () => {
    expect(table.vocabSize).toBe(tok.vocabSize);
    for (const a of [table.data.bytes, table.data.offsets, table.data.hidden, table.data.eog]) {
      expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    }
    let longest = 0;
    for (let id = 0; id < tok.vocabSize; id++) {
      const bytes = tok.tokenBytes(id);
      expect(Buffer.from(table.piece(id, true)).equals(Buffer.from(bytes))).toBe(true);
      expect(table.pieceLength(id, true)).toBe(bytes.length);
      expect(table.firstByte(id, true)).toBe(bytes.length > 0 ? bytes[0] : -1);
      longest = Math.max(longest, bytes.length);
    }
    expect(table.maxPieceBytes()).toBe(longest);
    expect(table.has(-1)).toBe(false);
    expect(table.has(tok.vocabSize)).toBe(false);
    expect(table.has(1.5)).toBe(false);
    // control tokens (the end-of-generation ones here) have no text unless special is asked for
    for (const id of tok.endOfGenerationIds()) {
      expect(table.isEndOfGeneration(id)).toBe(true);
      expect(table.pieceLength(id, true)).toBeGreaterThan(0);
      expect(table.pieceLength(id, false)).toBe(0);
      expect(table.piece(id, false)).toHaveLength(0);
      expect(table.firstByte(id, false)).toBe(-1);
    }
    const hello = tok.encode('hello')[0];
    expect(table.isEndOfGeneration(hello)).toBe(false);
    expect(Buffer.from(table.piece(hello, false)).equals(Buffer.from(table.piece(hello, true)))).toBe(true);
  });

  test('copyPiece copies a piece (skipping bytes) without a view', () => {
    const id = tok.encode(' hello')[0];
    const out = new Uint8Array(64);
    const n = table.copyPiece(id, false, out, 3, 1);
    expect(Buffer.from(out.subarray(3, 3 + n)).equals(Buffer.from(tok.tokenBytes(id).subarray(1)))).toBe(true);
  });

  test('a StreamDecoder over the table alone gives the Tokenizer\'s text', () => {
    for (const c of readVectors(name).slice(0, 40)) {
      const dec = new StreamDecoder(new PieceTable(table.data), false);
      const text = c.ids.map((id) => dec.push(id)).join('') + dec.flush();
      expect(text).toBe(tok.decode(c.ids));
    }
  });
});

test('a table whose parts disagree is refused', () => {
  const good = tokenizerFor('gpt-2').pieceTable.data;
  expect(() => new PieceTable({ ...good, hidden: good.hidden.subarray(1) })).toThrow(/do not agree/);
  expect(() => new PieceTable({ ...good, bytes: good.bytes.subarray(1) })).toThrow(/do not agree/);
});

test('a worker thread decodes from the posted table, reading the same memory', async () => {
  const tok = tokenizerFor('gpt-2');
  const cases = readVectors('gpt-2').slice(0, 20);
  // The compiled modules (a worker runs JavaScript): piece-table and stream-decoder only.
  const dist = path.join(__dirname, '..', 'dist', 'server', 'src', 'tokenizer');
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { PieceTable } = require(${JSON.stringify(path.join(dist, 'piece-table.js'))});
    const { StreamDecoder } = require(${JSON.stringify(path.join(dist, 'stream-decoder.js'))});
    const table = new PieceTable(workerData.table);
    const texts = workerData.cases.map((ids) => {
      const dec = new StreamDecoder(table, false);
      return ids.map((id) => dec.push(id)).join('') + dec.flush();
    });
    parentPort.postMessage({ texts, sameMemory: workerData.table.bytes.buffer instanceof SharedArrayBuffer });
  `;
  const w = new Worker(code, { eval: true, workerData: { table: tok.pieceTable.data, cases: cases.map((c) => c.ids) } });
  const reply = await new Promise<{ texts: string[]; sameMemory: boolean }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  expect(reply.sameMemory).toBe(true);
  expect(reply.texts).toEqual(cases.map((c) => tok.decode(c.ids)));
});
