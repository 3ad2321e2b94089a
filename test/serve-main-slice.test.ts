// serve --main-slice-us: the server's event-loop thread asks the scheduler for
// a short time slice (Linux 6.12+ EEVDF), so it preempts the engine threads as
// soon as tokens are ready. Shown on a real `serve` process through
// /proc/<pid>/sched (se.slice), and on the binding in a worker thread.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { serveOptionsFrom } from '../server/src/cli/serve';
import { UsageError } from '../server/src/cli/options';
import { TINY_MODEL } from './service-helpers';

const ROOT = path.join(__dirname, '..');
/** This kernel reports per-thread slices (6.12+). */
const kernelHasSlices = /se\.slice/.test(fs.readFileSync('/proc/self/sched', 'utf8'));

function sliceOf(pid: number): number {
  const m = /^se\.slice\s+:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/sched`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

test('--main-slice-us: 100 µs by default, from the flag or TOKENSTREAM_MAIN_SLICE_US, 0 = the kernel default', () => {
  const opts = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const o = serveOptionsFrom(argv, env);
    if (o === 'help') throw new Error('help');
    return o.mainSliceUs;
  };
  expect(opts([])).toBe(100);
  expect(opts(['--main-slice-us', '0'])).toBe(0);
  expect(opts([], { TOKENSTREAM_MAIN_SLICE_US: '250' })).toBe(250);
  expect(() => opts(['--main-slice-us', '-5'])).toThrow(UsageError);
  expect(() => opts(['--main-slice-us', '200000'])).toThrow(/0\.\.100000/);
});

test('a serve process runs its event loop on the slice it was given', async () => {
  const child = spawn(
    process.execPath,
    [path.join(ROOT, 'bin/tokenstream.js'), 'serve', '--model', TINY_MODEL, '--port', '0', '--metrics-port', 'off', '--main-slice-us', '250'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  try {
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('serving ')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
    });
    if (kernelHasSlices) {
      expect(sliceOf(child.pid!)).toBe(250_000); // the main thread's id is the process id
      expect(stderr).not.toMatch(/main-slice-us/);
    } else {
      expect(stderr).toMatch(/--main-slice-us: left at the kernel's default \(.+\)/);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}, 30_000);

test('setThreadSlice sets and reads back the calling thread\'s slice, and refuses bad values', async () => {
  const script = `
    const { parentPort } = require('node:worker_threads');
    const { kernels } = require(${JSON.stringify(path.join(ROOT, 'dist/server/src/engine/kernels.js'))});
    const k = kernels();
    const first = k.setThreadSlice(0);
    const set = k.setThreadSlice(300);
    const after = k.setThreadSlice(0);
    let bad = '';
    try { k.setThreadSlice(-1); } catch (e) { bad = e.code + ': ' + e.message; }
    parentPort.postMessage({ first, set, after, bad });`;
  const r = await new Promise<Record<string, { ok: boolean; previousMicros: number; error?: string } | string>>((resolve, reject) => {
    const w = new Worker(script, { eval: true });
    w.once('message', resolve);
    w.once('error', reject);
  });
  expect(r.bad).toMatch(/^INVALID_ARGUMENT: micros must be an integer in \[0, 100000\]/);
  const { first, set, after } = r as Record<string, { ok: boolean; previousMicros: number; error?: string }>;
  if (kernelHasSlices) {
    expect(first.ok).toBe(true);
    expect(first.previousMicros).toBeGreaterThan(0);
    expect(set.ok).toBe(true);
    expect(after.previousMicros).toBe(300);
  } else {
    expect(first.ok).toBe(false);
    expect(first.error).toMatch(/slice/);
  }
});
