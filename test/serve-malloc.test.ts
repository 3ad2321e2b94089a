// serve's malloc settings (server/src/engine/malloc.ts): arenas capped before
// the worker threads start, freed memory handed back by malloc_trim, the
// user's MALLOC_ARENA_MAX respected. Each case runs in a child process so this
// test process's allocator is untouched. glibc only (Linux here).
import { execFileSync } from 'node:child_process';
import { tuneMallocForServing } from '../server/src/engine/malloc';
import { builtModule } from './helpers/dist';

const MALLOC = builtModule('server/src/engine/malloc');

function run(script: string, env: NodeJS.ProcessEnv = {}): string {
  const clean = { ...process.env, ...env };
  if (!('MALLOC_ARENA_MAX' in env)) delete clean.MALLOC_ARENA_MAX;
  return execFileSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60_000, env: clean }).trim();
}

/** Arenas (64 MB-aligned read-write anonymous mappings) after 6 threads allocate, with or without the cap. */
function arenasAfterThreads(cap: boolean): number {
  return Number(
    run(`
      const fs = require('node:fs');
      const { Worker } = require('node:worker_threads');
      if (${cap} && !require(${JSON.stringify(MALLOC)}).tuneMallocForServing()) throw new Error('not capped');
      const arenas = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => {
        const m = /^([0-9a-f]+)-[0-9a-f]+ rw\\S+ \\S+ \\S+ 0\\s*$/.exec(l);
        return m !== null && BigInt('0x' + m[1]) % (64n << 20n) === 0n;
      }).length;
      let done = 0;
      for (let i = 0; i < 6; i++) {
        const w = new Worker("const b = []; for (let i = 0; i < 2000; i++) b.push(Buffer.allocUnsafeSlow(1000)); require('node:worker_threads').parentPort.postMessage(1); setTimeout(() => {}, 3000);", { eval: true });
        w.on('message', () => { if (++done === 6) { process.stdout.write(String(arenas())); process.exit(0); } });
      }`),
  );
}

test('capping the arenas before threads start keeps them from getting one each', () => {
  const capped = arenasAfterThreads(true);
  const free = arenasAfterThreads(false);
  expect(free).toBeGreaterThanOrEqual(capped + 4);
}, 60_000);

test("MALLOC_ARENA_MAX in the environment wins: nothing is changed", () => {
  expect(tuneMallocForServing({ MALLOC_ARENA_MAX: '4' })).toBe(false);
  expect(run(`process.stdout.write(String(require(${JSON.stringify(MALLOC)}).tuneMallocForServing()))`, { MALLOC_ARENA_MAX: '8' })).toBe('false');
});

test('malloc_trim hands freed memory inside the heap back to the system', () => {
  // 80 MB in 16 KB blocks (below the mmap threshold: from the heap), all freed
  // but the last, which keeps the heap's top from shrinking by itself.
  const out = run(`
    const { trimMalloc } = require(${JSON.stringify(MALLOC)});
    const anon = () => Number(/RssAnon:\\s+(\\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024; // MB
    function fill() {
      const blocks = [];
      for (let i = 0; i < 5000; i++) blocks.push(Buffer.allocUnsafeSlow(16384).fill(1));
      return blocks[blocks.length - 1];
    }
    const last = fill();
    globalThis.gc(); globalThis.gc();
    const freed = anon();
    setTimeout(() => {
      const held = anon(); // glibc keeps the freed blocks
      const ok = trimMalloc();
      process.stdout.write(JSON.stringify({ ok, freed, held, trimmed: anon(), keep: last.length }));
    }, 200);`);
  const r = JSON.parse(out) as { ok: boolean; freed: number; held: number; trimmed: number };
  expect(r.ok).toBe(true);
  expect(r.freed - r.held).toBeLessThan(10); // MB
  expect(r.held - r.trimmed).toBeGreaterThan(40);
}, 60_000);
