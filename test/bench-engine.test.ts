// The engine bench's own logic, on the bundled tiny model: its --json output
// shape (ours only: the llama.cpp peer is installed on first use, never by
// tests) and the bytes-per-token figure behind the bandwidth fraction.
import * as path from 'node:path';

import { main, weightBytesPerToken } from '../scripts/bench-engine';
import { prebuiltBinaryPackage } from '../scripts/peer/install';
import { readGgufMetadata } from '../server/src/engine/gguf';
import type { GgufMetadata } from '../server/src/engine/types';
import { captureStdout } from './helpers/capture-output';

const TINY = path.join(__dirname, '..', 'models', 'llama-2-tiny-random.gguf');

async function runMain(argv: string[]): Promise<{ code: number; stdout: string }> {
  const { result, stdout } = await captureStdout(() => main(argv));
  return { code: result, stdout };
}

test('--json --no-peer prints exactly the documented object', async () => {
  const { code, stdout } = await runMain(['--model', TINY, '--json', '--no-peer', '--reps', '1', '--tokens', '3', '--threads', '1']);
  expect(code).toBe(0);
  const lines = stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const r = JSON.parse(lines[0]);
  expect(Object.keys(r)).toEqual(['model', 'threads', 'ours', 'llamacpp', 'ratio', 'read_bandwidth_gbs']);
  // read beside the batch-1 decode rounds (a 512 MB streaming read: more than 1 GB/s on any machine)
  expect(r.read_bandwidth_gbs).toBeGreaterThan(1);
  expect(r.model).toBe(path.resolve(TINY));
  expect(r.threads).toBe(1);
  expect(Object.keys(r.ours)).toEqual(['pp_tps', 'tg_tps', 'batch_tps']);
  expect(Object.keys(r.ours.batch_tps)).toEqual(['4', '8']);
  for (const v of [r.ours.pp_tps, r.ours.tg_tps, r.ours.batch_tps['4'], r.ours.batch_tps['8']]) {
    expect(typeof v).toBe('number');
    expect(v).toBeGreaterThan(0);
  }
  expect(r.llamacpp).toBeNull();
  expect(r.ratio).toBeNull();
});

test('the text report names every measure, with the chosen prompt and batch sizes', async () => {
  const { code, stdout } = await runMain(['--model', TINY, '--no-peer', '--reps', '1', '--tokens', '2', '--threads', '1']);
  expect(code).toBe(0);
  for (const s of ['pp tok/s (128-token prompt)', 'tg tok/s (batch 1)', 'decode tok/s, 4 sequences', 'decode tok/s, 8 sequences', 'weights read per token'])
    expect(stdout).toContain(s);
  const other = await runMain(['--model', TINY, '--json', '--no-peer', '--reps', '1', '--tokens', '2', '--threads', '1', '--prompt', '40', '--batch', '2,3']);
  expect(Object.keys(JSON.parse(other.stdout).ours.batch_tps)).toEqual(['2', '3']);
});

test('bad arguments are refused', async () => {
  await expect(main(['--json'])).rejects.toThrow(/--model is required/);
  await expect(main(['--model', TINY, '--threads', '0'])).rejects.toThrow(/--threads/);
  await expect(main(['--model', TINY, '--bogus'])).rejects.toThrow(/Unknown option '--bogus'/);
});

test('weights per token: one embedding row, unless the embedding is also the LM head', () => {
  const md = readGgufMetadata(TINY);
  const vocab = md.tensors.find((t) => t.name === 'token_embd.weight')!.dims[1];
  const all = md.tensors.reduce((a, t) => a + t.nbytes, 0);
  const embd = md.tensors.find((t) => t.name === 'token_embd.weight')!.nbytes;
  const untied = md.tensors.some((t) => t.name === 'output.weight');
  expect(weightBytesPerToken(md, vocab)).toBeCloseTo(untied ? all - embd + embd / vocab : all, 6);
  const tied: GgufMetadata = { ...md, tensors: md.tensors.filter((t) => t.name !== 'output.weight') };
  expect(weightBytesPerToken(tied, vocab)).toBe(tied.tensors.reduce((a, t) => a + t.nbytes, 0));
});

test('the peer installs the CPU prebuilt binary of this platform', () => {
  expect(prebuiltBinaryPackage('linux', 'x64')).toBe('@node-llama-cpp/linux-x64');
  expect(prebuiltBinaryPackage('linux', 'arm64')).toBe('@node-llama-cpp/linux-arm64');
  expect(prebuiltBinaryPackage('darwin', 'arm64')).toBe('@node-llama-cpp/mac-arm64-metal');
  expect(prebuiltBinaryPackage('aix', 'ppc64')).toBeNull();
});
