// The KV cache's residency: the cache is one mapping of its own whose pages
// become resident only as positions are written, so a session can say how much
// of it is in memory (session.kvResidentBytes, which bench:memory relies on),
// and on Linux the mapping is named in /proc/self/smaps.
import * as fs from 'node:fs';
import { Model } from '../server/src/engine/model';
import { batchOf, seqEntries, TINY_MODEL } from './model-helpers';

const PAGE = 4096;

/** Resident bytes of this process's mappings named tokenstream-kv (Linux smaps). */
function smapsKvResident(): { mappings: number; rss: number } {
  const lines = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n');
  let inKv = false;
  let mappings = 0;
  let rss = 0;
  for (const line of lines) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      inKv = line.includes('/memfd:tokenstream-kv');
      if (inKv) mappings++;
    } else if (inKv) {
      const m = /^Rss:\s+(\d+) kB/.exec(line);
      if (m) rss += Number(m[1]) * 1024;
    }
  }
  return { mappings, rss };
}

function decodePrompt(session: ReturnType<Model['createSession']>, seq: number, length: number, start = 0): void {
  const tokens = Array.from({ length }, (_, i) => 1 + ((i * 7919) % 31000));
  for (let at = 0; at < length; at += 256) session.decode(batchOf(seqEntries(seq, tokens.slice(at, at + 256), start + at)));
}

describe('KV cache residency', () => {
  // The tiny model: 1 layer, KV width 8, context 4096. Per slot and position,
  // K and V take 8 f16 values each (16 bytes): a slot's K is 64 KiB, page aligned.
  let model: Model;
  beforeAll(() => {
    model = Model.load(TINY_MODEL);
  });
  afterAll(() => model.close());

  test('grows with the positions written, never beyond the allocation', () => {
    const s = model.createSession({ maxSequences: 2, contextLength: 4096, maxBatch: 256, threads: 1, kvType: 'f16' });
    try {
      expect(s.kvCacheBytes).toBe(2 * 2 * 4096 * 8 * 2); // K and V × slots × context × width × f16
      expect(s.kvResidentBytes).toBe(0); // nothing written yet

      // 1024 positions of slot 1: 16 KiB of K and 16 KiB of V, four pages each.
      decodePrompt(s, 1, 1024);
      expect(s.kvResidentBytes).toBe(8 * PAGE);

      // Five more positions in slot 0: one page of K and one of V.
      decodePrompt(s, 0, 5);
      expect(s.kvResidentBytes).toBe(10 * PAGE);

      // Every position of both slots: all of it, and no more.
      decodePrompt(s, 0, 4096 - 5, 5);
      decodePrompt(s, 1, 4096 - 1024, 1024);
      expect(s.kvResidentBytes).toBe(s.kvCacheBytes);
    } finally {
      s.close();
    }
    expect(() => s.kvResidentBytes).toThrow(/closed/);
  });

  test('f32 caches too, and a page-rounded cache reports at most its size', () => {
    // 3 positions of context: 3 × 8 × 4 = 96 bytes of K per slot, far less than a page.
    const s = model.createSession({ maxSequences: 1, contextLength: 3, maxBatch: 8, threads: 1, kvType: 'f32' });
    try {
      expect(s.kvCacheBytes).toBe(2 * 128); // K and V, each rounded up to 64 bytes
      expect(s.kvResidentBytes).toBe(0);
      decodePrompt(s, 0, 3);
      expect(s.kvResidentBytes).toBe(s.kvCacheBytes);
    } finally {
      s.close();
    }
  });

  test('on Linux the cache is a mapping named tokenstream-kv whose Rss is the resident bytes', () => {
    if (process.platform !== 'linux') return; // smaps and memfd are Linux's
    expect(smapsKvResident().mappings).toBe(0);
    const a = model.createSession({ maxSequences: 2, contextLength: 4096, maxBatch: 256, threads: 1 });
    const b = model.createSession({ maxSequences: 1, contextLength: 4096, maxBatch: 256, threads: 1 });
    try {
      decodePrompt(a, 0, 700);
      decodePrompt(b, 0, 3000);
      const kv = smapsKvResident();
      expect(kv.mappings).toBe(2);
      expect(a.kvResidentBytes).toBeGreaterThan(0);
      expect(kv.rss).toBe(a.kvResidentBytes + b.kvResidentBytes);
    } finally {
      a.close();
      b.close();
    }
    expect(smapsKvResident().mappings).toBe(0); // unmapped with the session
  });
});
