// scripts/compare-addons.ts (build:pgo's plain-vs-PGO table): the engine bench
// run once per build with TOKENSTREAM_ADDON pointing at it; here the same build
// under two names on the tiny model, so only the plumbing is checked.
import * as path from 'node:path';
import { compareAddons, formatComparison } from '../scripts/compare-addons';
import { addonPath } from '../server/src/engine/addon';
import { builtModule } from './helpers/dist';

const TINY = path.join(__dirname, '..', 'models', 'llama-2-tiny-random.gguf');

test('each build runs the engine bench; the table puts them side by side', async () => {
  builtModule('scripts/bench-engine');
  const addon = addonPath();
  const c = await compareAddons([['plain', addon], ['other', addon]], TINY, 2, ['--reps', '1', '--tokens', '2', '--batch', '2', '--threads', '1'], () => undefined);
  expect(Object.keys(c.results)).toEqual(['plain', 'other']);
  for (const r of Object.values(c.results)) {
    expect(r.tg_tps).toBeGreaterThan(0);
    expect(Object.keys(r.batch_tps)).toEqual(['2']);
  }
  const text = formatComparison(c);
  expect(text).toMatch(/measure\s+plain\s+other\s+other vs plain/);
  expect(text).toContain('decode tok/s, 2 sequences');
  expect(text).toMatch(/load average/);
}, 60_000);

test('a build that cannot be loaded fails the comparison with the bench\'s message', async () => {
  await expect(compareAddons([['bad', '/nonexistent/tokenstream.node'], ['plain', addonPath()]], TINY, 1, ['--reps', '1', '--tokens', '2'], () => undefined)).rejects.toThrow(
    /bench-engine with \/nonexistent\/tokenstream.node exited 1/,
  );
}, 60_000);
