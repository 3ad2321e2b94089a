// serve --prefetch / --mlock: parsed from flags and environment, and carried to
// the engine's Model.load in the worker threads (shown by mlock: the process's
// locked memory grows by the model file while the server runs).
import * as fs from 'node:fs';
import { TokenStreamClient } from '../client/src/client';
import { serveOptionsFrom } from '../server/src/cli/serve';
import { TokenStreamServer } from '../server/src/grpc/server';
import { serveOptions, TINY_MODEL } from './service-helpers';

function options(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const o = serveOptionsFrom(argv, env);
  if (o === 'help') throw new Error('help');
  return o;
}

/** Locked memory of this process (bytes). */
function lockedBytes(): number {
  const m = /^VmLck:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

test('--prefetch and --mlock reach the load options; off by default', () => {
  expect(options([]).load).toEqual({});
  expect(options(['--prefetch']).load).toEqual({ prefetch: true });
  expect(options(['--mlock', '--prefetch', '--cpu', 'scalar']).load).toEqual({ cpu: 'scalar', prefetch: true, lock: true });
  expect(options([], { TOKENSTREAM_PREFETCH: '1', TOKENSTREAM_MLOCK: 'true' }).load).toEqual({ prefetch: true, lock: true });
  expect(options([], { TOKENSTREAM_MLOCK: '0' }).load).toEqual({});
});

test('a server started with lock: true locks the mapped model (or says why it cannot)', async () => {
  const before = lockedBytes();
  const size = fs.statSync(TINY_MODEL).size;
  const server = await TokenStreamServer.start(serveOptions({ workers: 2, load: { lock: true } }));
  try {
    let loadError: Error | undefined;
    await server.ready.catch((e: Error) => (loadError = e));
    if (loadError) {
      // Not allowed to lock this much here: the load fails with a clear message.
      expect(loadError.message).toMatch(/mlock of .* failed: .*RLIMIT_MEMLOCK/);
      return;
    }
    // Two workers share one mapping: it is locked once.
    const locked = lockedBytes() - before;
    expect(locked).toBeGreaterThanOrEqual(size);
    expect(locked).toBeLessThan(2 * size);
    const client = new TokenStreamClient(`127.0.0.1:${server.port}`);
    const r = await client.complete({ tokens: [1, 450], params: { maxTokens: 4, temperature: 0, ignoreEos: true } }).result;
    client.close();
    expect(r.tokenIds).toHaveLength(4);
  } finally {
    await server.shutdown(1000);
  }
  // The mapping (and its lock) goes with the last worker.
  expect(lockedBytes()).toBe(before);
});
