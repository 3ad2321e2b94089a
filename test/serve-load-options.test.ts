// serve --prefetch / --mlock / --engine-nice: parsed from flags and environment,
// and carried to the engine in the worker threads (shown by mlock: the process's
// locked memory grows by the model file while the server runs; and by the
// niceness of the engine's threads).
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

/** Niceness of each thread of this process, by thread id. */
function threadNiceness(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync('/proc/self/task')) {
    try {
      const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start at field 3; nice is field 19.
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // the thread ended
    }
  }
  return out;
}

test('--engine-nice: parsed and checked; the engine threads run at that niceness, the main thread does not', async () => {
  expect(options(['--engine-nice', '7']).engineNice).toBe(7);
  expect(options([], { TOKENSTREAM_ENGINE_NICE: '3' }).engineNice).toBe(3);
  expect(options([]).engineNice).toBe(0);
  for (const bad of ['-1', '20', '2.5']) expect(() => options(['--engine-nice', bad])).toThrow(/--engine-nice/);

  const before = new Set(threadNiceness().keys());
  const server = await TokenStreamServer.start(serveOptions({ threads: 2, engineNice: 7 }));
  try {
    await server.ready;
    const niced = [...threadNiceness()].filter(([tid, nice]) => !before.has(tid) && nice === 7);
    // the worker thread and its pool's helper thread
    expect(niced.length).toBeGreaterThanOrEqual(2);
    expect(threadNiceness().get(process.pid)).toBe(0);
  } finally {
    await server.shutdown(1000);
  }
});
