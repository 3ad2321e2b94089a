// The executable end to end: `tokenstream serve` (real process, signals),
// `tokenstream generate` and `tokenstream chat` against it; option parsing with
// flags, environment variables and defaults.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { TokenStreamClient } from '../client/src/client';
import { serveOptionsFrom, DEFAULT_MODEL } from '../server/src/cli/serve';
import { UsageError } from '../server/src/cli/options';

const root = path.resolve(__dirname, '..');
const bin = path.join(root, 'bin/tokenstream.js');

function run(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: root });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) p.stdin.end(input);
  });
}

describe('serve, generate and chat as processes', () => {
  let server: ChildProcessWithoutNullStreams;
  let log = '';
  let address = '';

  beforeAll(async () => {
    server = spawn(process.execPath, [bin, 'serve', '--port', '0', '--max-batch', '4'], {
      cwd: root,
      env: { ...process.env, TOKENSTREAM_CONTEXT: '512', TOKENSTREAM_GRACE_MS: '5000' },
    });
    server.stderr.on('data', (d) => (log += d));
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        const m = /listening on (\S+)/.exec(log);
        if (m && log.includes('serving')) {
          address = m[1];
          resolve();
        }
      };
      server.stderr.on('data', check);
      server.on('exit', (code) => reject(new Error(`serve exited ${code}: ${log}`)));
    });
  });

  afterAll(() => {
    if (server.exitCode === null) server.kill('SIGKILL');
  });

  test('the server runs the bundled model with the options given', async () => {
    expect(log).toMatch(/serving llama-2-tiny-random \(llama, 1×4 slots, ctx 512, /);
    const client = new TokenStreamClient(address);
    const [m] = await client.listModels();
    expect(m).toMatchObject({ name: 'llama-2-tiny-random', maxSequences: 4, sessionContextLength: 512 });
    client.close();
  });

  test('generate streams the text, then timings and counts', async () => {
    const r = await run(['generate', 'Once upon a time', '--max-tokens', '16', '--temperature', '0', '--ignore-eos', '--server', address]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[ttft [\d.]+ ms \| ([\d.]+|-) tokens\/s \| prompt \d+ tokens \| completion 16 tokens \| finish LENGTH\]/);
    // The same greedy text as the library gets.
    const client = new TokenStreamClient(address);
    const g = client.complete({ prompt: 'Once upon a time', params: { maxTokens: 16, temperature: 0, ignoreEos: true } });
    expect(r.stdout).toBe(`${(await g.result).text}\n`);
    client.close();
  });

  test('generate reports a bad request with its status and exits 1', async () => {
    const r = await run(['generate', 'hi', '--top-p', '2', '--server', address]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/INVALID_ARGUMENT: top_p/);
    expect((await run(['generate', '--server', address])).code).toBe(2);
  });

  test('chat answers each line and ends at /exit', async () => {
    const r = await run(['chat', '--server', address, '--max-tokens', '8', '--temperature', '0'], 'Hello there\nHow are you?\n/exit\n');
    expect(r.code).toBe(0);
    // The bundled model has no chat template: two answers from the transcript fallback.
    expect(r.stdout.split('\n').filter((l) => l.length > 0).length).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toBe('');
  });

  test('SIGTERM drains and exits 0', async () => {
    const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(log).toMatch(/SIGTERM: draining/);
    expect(log).toMatch(/stopped/);
  });
});

test('serve exits 1 with a clear message when a model cannot be loaded', async () => {
  const r = await run(['serve', '--port', '0', '--model', `bad=${path.join(root, 'package.json')}`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/failed to load: model 'bad' .*not a GGUF file/);
});

describe('serve options', () => {
  test('defaults: the bundled model on 127.0.0.1:50051', () => {
    const o = serveOptionsFrom([], {});
    if (o === 'help') throw new Error('help');
    expect(o).toMatchObject({ host: '127.0.0.1', port: 50051, workers: 1, maxSequences: 8, contextLength: 0, kvType: 'f16', queueLimit: 64 });
    expect(o.models).toEqual([{ name: 'llama-2-tiny-random', path: path.join(root, DEFAULT_MODEL) }]);
  });

  test('a flag beats its environment variable; lists from both', () => {
    const env = { TOKENSTREAM_PORT: '6000', TOKENSTREAM_WORKERS: '3', TOKENSTREAM_MODEL: 'a=/m/a.gguf,/m/b.gguf', TOKENSTREAM_KV_TYPE: 'f32' };
    const o = serveOptionsFrom(['--port', '7000', '--max-batch', '2', '--queue-limit', '0'], env);
    if (o === 'help') throw new Error('help');
    expect(o).toMatchObject({ port: 7000, workers: 3, maxSequences: 2, kvType: 'f32', queueLimit: 0 });
    expect(o.models).toEqual([
      { name: 'a', path: '/m/a.gguf' },
      { name: 'b', path: '/m/b.gguf' },
    ]);
    const flags = serveOptionsFrom(['--model', 'x=/m/x.gguf', '--model', 'y=/m/y.gguf'], env);
    if (flags === 'help') throw new Error('help');
    expect(flags.models.map((m) => m.name)).toEqual(['x', 'y']);
    expect(serveOptionsFrom(['--help'], {})).toBe('help');
  });

  test.each([
    [['--port', 'abc']],
    [['--port', '70000']],
    [['--workers', '0']],
    [['--kv-type', 'q8']],
    [['--cpu', 'sse']],
    [['--max-batch', '1.5']],
    [['--bogus']],
    [['extra']],
  ])('%j is a usage error', (argv) => {
    expect(() => serveOptionsFrom(argv as string[], {})).toThrow(UsageError);
  });
});
