// `tokenstream info` and `tokenstream run`, as real processes on real files.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { builtModule, ROOT } from './helpers/dist';
import { REFERENCE_DIR, TINY_MODEL } from './model-helpers';

const BIN = path.join(ROOT, 'bin/tokenstream.js');

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  builtModule('server/src/cli/info');
  builtModule('server/src/cli/run');
});

describe('tokenstream info', () => {
  test('prints the configuration, tensor types and kernel path', () => {
    const r = cli('info', '--model', path.join(REFERENCE_DIR, 'mini-llama-q4_k_m.gguf'));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/architecture\s+llama/);
    expect(r.stdout).toMatch(/attention heads\s+8 \(KV heads 2, head size 32\)/);
    expect(r.stdout).toMatch(/tensor types\s+.*q4_K \d+.*q6_K \d+|tensor types\s+.*q6_K \d+.*q4_K \d+/);
    expect(r.stdout).toMatch(/CPU kernel path\s+(scalar|avx2|avx512|neon)/);
  });

  test('--json gives the ModelInfo object; --cpu forces a path', () => {
    const r = cli('info', '--model', TINY_MODEL, '--json', '--cpu', 'scalar');
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info).toMatchObject({ architecture: 'llama', vocabSize: 32000, embeddingLength: 8, cpuPath: 'scalar', ropeType: 'normal' });
    expect(info.tensorTypes.f16).toBeGreaterThan(0);
  });

  test('a bad file exits 1 with "<code>: <message>" on stderr', () => {
    const r = cli('info', '--model', path.join(ROOT, 'package.json'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^GGUF_INVALID: .*package\.json/);
    const missing = cli('info', '--model', '/nonexistent/model.gguf');
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^IO_ERROR: /);
  });

  test('--help, and usage errors exit 2', () => {
    expect(cli('info', '--help').stdout).toMatch(/Usage: tokenstream info --model FILE/);
    const r = cli('info');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--model is required/);
    expect(cli('info', '--model', TINY_MODEL, 'extra').stderr).toMatch(/unexpected argument 'extra'/);
  });
});

describe('tokenstream run', () => {
  const ref = JSON.parse(fs.readFileSync(path.join(REFERENCE_DIR, 'llama-cpp-reference.json'), 'utf8'));

  test('--json generates llama.cpp\'s greedy tokens on the F16 reference model, timings on stderr', () => {
    const c = ref.models['mini-llama-f16.gguf'][0];
    const r = cli('run', '--model', path.join(REFERENCE_DIR, 'mini-llama-f16.gguf'), '--prompt-ids', c.prompt_ids.join(','), '--max-tokens', '32', '--threads', '2', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ prompt_ids: c.prompt_ids, generated: c.generated });
    expect(r.stderr).toMatch(/prompt: \d+ tokens .* tok\/s.*decode: 32 tokens .* tok\/s/);
  });

  test('--prompt tokenizes the text as llama.cpp does (BOS added)', () => {
    const c = ref.models['mini-llama-f16.gguf'][1];
    const r = cli('run', '--model', path.join(REFERENCE_DIR, 'mini-llama-f16.gguf'), '--prompt', c.text, '--max-tokens', '4', '--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ prompt_ids: c.prompt_ids, generated: c.generated.slice(0, 4) });
  });

  test('text output, a seeded sampler is reproducible', () => {
    const args = ['run', '--model', TINY_MODEL, '--prompt-ids', '1,15043,29892', '--max-tokens', '8', '--temperature', '0.9', '--seed', '42'];
    const a = cli(...args);
    const b = cli(...args);
    expect(a.status).toBe(0);
    expect(a.stdout.split('\n')[0].split(' ')).toHaveLength(8);
    expect(a.stdout).toBe(b.stdout);
  });

  test('bad input: a token past the vocabulary exits 1 with its code; bad flags exit 2', () => {
    const r = cli('run', '--model', TINY_MODEL, '--prompt-ids', '1,99999', '--max-tokens', '2');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^INVALID_ARGUMENT: .*token 99999/);
    expect(cli('run', '--model', TINY_MODEL, '--prompt-ids', '1,x').status).toBe(2);
    expect(cli('run', '--model', TINY_MODEL).status).toBe(2);
    expect(cli('run', '--help').stdout).toMatch(/--prompt-ids LIST/);
  });
});
