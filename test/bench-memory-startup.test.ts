// bench:memory and bench:startup on the bundled tiny model (real child servers):
// the JSON they print. Nothing about size or speed is asserted beyond sanity.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { main as memoryMain } from '../scripts/bench-memory';
import { main as startupMain } from '../scripts/bench-startup';
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
      expect(s.rss_mb).toBeCloseTo(s.rss_file_mb + s.rss_anon_mb, 0);
    }
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
