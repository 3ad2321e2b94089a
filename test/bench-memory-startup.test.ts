// bench:memory and bench:startup on the bundled tiny model (real child servers):
// the JSON they print. Nothing about size or speed is asserted beyond sanity.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main as memoryMain } from '../scripts/bench-memory';
import { main as startupMain } from '../scripts/bench-startup';
import { classifySmaps } from '../scripts/service/smaps';
import { captureStdout } from './helpers/capture-output';

const TINY = path.join(__dirname, '..', 'models', 'llama-2-tiny-random.gguf');

async function stdoutOf(run: () => Promise<number>): Promise<string> {
  const { result, stdout } = await captureStdout(run);
  expect(result).toBe(0);
  return stdout;
}

test('bench:memory --json: RSS samples every --every requests for each worker count', async () => {
  const r = JSON.parse(await stdoutOf(() => memoryMain(['--model', TINY, '--workers', '1,2', '--requests', '40', '--every', '20', '--concurrency', '4', '--json'])));
  expect(r.model).toBe(path.resolve(TINY));
  expect(r.results.map((x: { workers: number }) => x.workers)).toEqual([1, 2]);
  for (const x of r.results) {
    expect(x.file_mb).toBeCloseTo(fs.statSync(TINY).size / 1048576, 3);
    expect(x.kv_cache_mb).toBeGreaterThan(0);
    // warm-up sample, then one per 20 requests
    expect(x.samples.map((s: { requests: number }) => s.requests)).toEqual([0, 20, 40]);
    for (const s of [x.loaded, ...x.samples]) {
      expect(s.rss_mb).toBeGreaterThan(s.rss_anon_mb);
      expect(s.rss_mb).toBeCloseTo(s.rss_file_mb + s.rss_anon_mb + s.rss_shmem_mb, 0);
      // smaps' parts: the whole (tiny) file is paged in, the KV caches are
      // touched by the requests but far from whole, and they add up
      expect(s.weights_mb).toBeGreaterThan(0);
      expect(s.weights_mb).toBeLessThanOrEqual(x.file_mb + 0.01);
      expect(s.node_mb).toBeGreaterThan(0);
      expect(s.overhead_mb).toBeCloseTo(s.node_mb + s.other_files_mb + s.anon_mb, 3);
    }
    const end = x.samples[x.samples.length - 1];
    expect(end.kv_resident_mb).toBeGreaterThan(0);
    expect(end.kv_resident_mb).toBeLessThan(x.kv_cache_mb);
    expect(x.overhead_mb).toBe(end.overhead_mb);
    expect(x.kv_resident_mb).toBe(end.kv_resident_mb);
  }
}, 120_000);

test('bench:startup --json: listening <= serving <= first token, per start', async () => {
  const r = JSON.parse(await stdoutOf(() => startupMain(['--model', TINY, '--reps', '2', '--variants', 'plain,prefetch', '--json'])));
  expect(r.results.map((x: { variant: string }) => x.variant)).toEqual(['plain', 'prefetch']);
  for (const x of r.results) {
    expect(x.runs).toHaveLength(2);
    for (const run of x.runs) {
      expect(run.listening_ms).toBeGreaterThan(0);
      expect(run.serving_ms).toBeGreaterThanOrEqual(run.listening_ms);
      expect(run.first_token_ms).toBeGreaterThan(run.serving_ms);
    }
    expect(x.best_first_token_ms).toBeLessThanOrEqual(x.median_first_token_ms);
  }
}, 120_000);

test('smaps classification: weights by file, KV by memfd name, the node binary, other files, anonymous', () => {
  const text = [
    '55d0-55d1 r-xp 00000000 fe:00 1  /usr/bin/node',
    'Rss:                 100 kB',
    '7f00-7f10 r--p 00000000 fe:00 2  /models/m.gguf',
    'Rss:                 400 kB',
    '7f10-7f20 rw-s 00000000 00:01 3  /memfd:tokenstream-kv (deleted)',
    'Rss:                  16 kB',
    '7f20-7f30 r-xp 00000000 fe:00 4  /lib/libc.so.6',
    'Rss:                  30 kB',
    '7f30-7f40 rw-p 00000000 00:00 0 ',
    'Rss:                   8 kB',
    '7f40-7f50 rw-p 00000000 00:00 0  [heap]',
    'Rss:                   4 kB',
  ].join('\n');
  expect(classifySmaps(text, ['/models/m.gguf'], '/usr/bin/node')).toEqual({
    rss: 558 * 1024,
    weights: 400 * 1024,
    kv: 16 * 1024,
    node: 100 * 1024,
    otherFiles: 30 * 1024,
    anon: 12 * 1024,
  });
});
