// serve's V8 heap settings (server/src/engine/heap.ts): the young generation
// stays at its initial size in a server with engine workers (creating a
// worker resets V8's flags; the pool sets them again), and flags the user
// gave win. Run in a child process, so this test process's flags are untouched.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { tuneHeapForServing } from '../server/src/engine/heap';
import { TINY_MODEL } from './service-helpers';

const DIST = path.join(__dirname, '..', 'dist', 'server', 'src');

/** New-space size (MB) of a process that runs a 2-worker server, then allocates objects that survive a while. */
function newSpaceAfterLoad(tune: boolean): number {
  const script = `
    const heap = require(${JSON.stringify(path.join(DIST, 'engine/heap.js'))});
    if (${tune}) heap.tuneHeapForServing([], '');
    const { TokenStreamServer, DEFAULT_TRANSPORT } = require(${JSON.stringify(path.join(DIST, 'grpc/server.js'))});
    const { DEFAULT_BACKPRESSURE } = require(${JSON.stringify(path.join(DIST, 'grpc/generation.js'))});
    (async () => {
      const s = await TokenStreamServer.start({ host: '127.0.0.1', port: 0, models: [{ name: 't', path: ${JSON.stringify(TINY_MODEL)} }],
        workers: 2, threads: 1, maxSequences: 1, contextLength: 64, kvType: 'f16', prefillChunk: 16, queueLimit: 1, graceMs: 100,
        transport: DEFAULT_TRANSPORT, backpressure: DEFAULT_BACKPRESSURE });
      await s.ready;
      const keep = [];
      for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 200000) keep.splice(0, 100000); }
      const space = require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
      process.stdout.write(String(space.space_size / 1048576));
      await s.shutdown(100);
    })();`;
  return Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 }));
}

test('the young generation stays small in a server with workers; V8 grows it otherwise', () => {
  expect(newSpaceAfterLoad(true)).toBeLessThanOrEqual(4);
  expect(newSpaceAfterLoad(false)).toBeGreaterThan(4);
}, 60_000);

test('heap flags of the user win', () => {
  expect(tuneHeapForServing(['--max-semi-space-size=8'], '')).toBe(false);
  expect(tuneHeapForServing([], '--heap-growing-percent=50 --enable-source-maps')).toBe(false);
  expect(tuneHeapForServing(['--no-optimize-for-size'], '')).toBe(false);
  expect(tuneHeapForServing([], '--optimize-for-size')).toBe(false);
});
