// `tokenstream tokenize` / `detokenize` on vocabulary-only GGUF files (runs the built CLI).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readVectors, vocabPath } from './tokenizer-helpers';

const BIN = path.join(__dirname, '..', 'bin', 'tokenstream.js');
const SPM = vocabPath('llama-spm');
const GPT2 = vocabPath('gpt-2');

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('tokenize prints exactly the text\'s ids as a JSON array (no BOS, no special parsing)', () => {
  const c = readVectors('llama-spm').find((v) => v.text.startsWith('Hello, y'))!;
  const r = cli('tokenize', '--model', SPM, '--text', c.text);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual(c.ids);
});

test('tokenize --file, --add-special, --special', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokenize-'));
  try {
    const file = path.join(dir, 'in.txt');
    fs.writeFileSync(file, 'Hello world');
    expect(JSON.parse(cli('tokenize', '--model', SPM, '--file', file).stdout)).toEqual([15043, 3186]);
    expect(JSON.parse(cli('tokenize', '--model', SPM, '--file', file, '--add-special').stdout)).toEqual([1, 15043, 3186]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  expect(JSON.parse(cli('tokenize', '--model', GPT2, '--text', '<|endoftext|>', '--special').stdout)).toEqual([50256]);
  expect(JSON.parse(cli('tokenize', '--model', GPT2, '--text', '<|endoftext|>').stdout).length).toBeGreaterThan(1);
});

test('detokenize prints the text', () => {
  expect(cli('detokenize', '--model', SPM, '--ids', '15043,3186')).toEqual({ status: 0, stdout: 'Hello world\n', stderr: '' });
  expect(cli('detokenize', '--model', GPT2, '--ids', '[50256, 15496]', '--special').stdout).toBe('<|endoftext|>Hello\n');
  expect(cli('detokenize', '--model', GPT2, '--ids', '50256 15496').stdout).toBe('Hello\n');
});

test('bad input: usage errors exit 2, bad files and ids exit 1 with the error code', () => {
  const noModel = cli('tokenize', '--text', 'x');
  expect(noModel.status).toBe(2);
  expect(noModel.stderr).toMatch(/--model is required/);
  expect(cli('tokenize', '--model', SPM).status).toBe(2);
  expect(cli('detokenize', '--model', SPM, '--ids', '1,x').stderr).toMatch(/'x' is not a token id/);
  const range = cli('detokenize', '--model', SPM, '--ids', '32000');
  expect(range.status).toBe(1);
  expect(range.stderr).toMatch(/TOKEN_OUT_OF_RANGE/);
  const missing = cli('tokenize', '--model', '/nonexistent.gguf', '--text', 'x');
  expect(missing.status).toBe(1);
  expect(missing.stderr).toMatch(/IO_ERROR/);
});
