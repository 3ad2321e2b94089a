// Fuzz: hundreds of random corruptions of a valid file (bit flips, extreme
// values over header fields, truncations), read in a child process. Every
// outcome must be a success or a GGUF_INVALID error, never a crash or a hang.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readGgufMetadata } from '../server/src/engine/gguf';
import { randomTensorSource } from '../server/src/engine/gguf-random';
import { GgufWriter } from '../server/src/engine/gguf-writer';
import { runWithAddon } from './gguf-child';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const ITERATIONS = 600;

// Runs in the child: mutates the seed file ITERATIONS times (deterministic PRNG),
// reads each mutant and tallies the outcomes.
const FUZZ = `
const fs = require('fs');
const [seedFile, work, iterations, headerLen] = [args[0], args[1], Number(args[2]), Number(args[3])];
const seed = fs.readFileSync(seedFile);
let s = 12345;
const rnd = () => { s = (s + 0x6d2b79f5) | 0; let t = Math.imul(s ^ (s >>> 15), s | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
const int = (n) => Math.floor(rnd() * n);
const EXTREMES = [0n, 1n, 2n, 3n, 4n, 5n, 31n, 32n, 255n, 256n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 1n << 32n, 1n << 40n, (1n << 63n) - 1n, 1n << 63n, (1n << 64n) - 1n];
const counts = {};
const bad = [];
for (let i = 0; i < iterations; i++) {
  let b = Buffer.from(seed);
  const steps = 1 + int(3);
  for (let k = 0; k < steps; k++) {
    const kind = int(5);
    if (kind === 0) { const at = int(headerLen); b[at] ^= 1 << int(8); }
    else if (kind === 1) { b = b.subarray(0, int(b.length)); }
    else if (kind === 2 && b.length >= 8) { const at = int(Math.min(headerLen, b.length - 8)); b.writeBigUInt64LE(EXTREMES[int(EXTREMES.length)], at); }
    else if (kind === 3 && b.length >= 4) { const at = int(Math.min(headerLen, b.length - 4)); b.writeUInt32LE(Number(EXTREMES[int(13)] & 0xffffffffn), at); }
    else if (b.length) { b[int(b.length)] = int(256); }
  }
  const file = work + '/mutant.gguf';
  fs.writeFileSync(file, b);
  let key;
  try { addon.readGgufMetadata(file); key = 'ok'; }
  catch (e) {
    key = e.code || 'NO_CODE';
    if (key !== 'GGUF_INVALID' || !e.message.startsWith(file + ': ')) bad.push({ i, code: e.code, message: e.message });
  }
  counts[key] = (counts[key] || 0) + 1;
}
console.log(JSON.stringify({ counts, bad: bad.slice(0, 5) }));
`;

test(`${ITERATIONS} corruptions of a valid file: success or GGUF_INVALID, never a crash`, () => {
  // a small file with every kind of header content: scalars, strings, arrays, nested arrays, tensors
  const seedFile = path.join(dir, 'seed.gguf');
  const w = new GgufWriter();
  w.set('general.architecture', 'string', 'llama')
    .set('general.alignment', 'uint32', 32)
    .set('llama.block_count', 'uint32', 1)
    .set('llama.rope.freq_base', 'float32', 10000)
    .set('x.i64', 'int64', -5)
    .set('x.f64', 'float64', 0.5)
    .set('x.bool', 'bool', true)
    .set('tokenizer.ggml.tokens', 'array<string>', ['<unk>', '<s>', '</s>', 'a', 'b', 'ab', '▁the'])
    .set('tokenizer.ggml.scores', 'array<float32>', new Float32Array(7).fill(-1))
    .set('tokenizer.ggml.token_type', 'array<int32>', new Int32Array(7).fill(1))
    .set('x.nested', 'array<array<uint16>>', [[1, 2], [3]])
    .set('x.bools', 'array<bool>', [true, false]);
  w.addTensor('token_embd.weight', 'q8_0', [32, 7], randomTensorSource('q8_0', [32, 7], { seed: 1, std: 0.1 }));
  w.addTensor('blk.0.attn_norm.weight', 'f32', [32], randomTensorSource('f32', [32], { seed: 2, std: 0.1, mean: 1 }));
  w.addTensor('blk.0.ffn_down.weight', 'q4_K', [256, 2], randomTensorSource('q4_K', [256, 2], { seed: 3, std: 0.1 }));
  w.addTensor('output.weight', 'f16', [32, 7], randomTensorSource('f16', [32, 7], { seed: 4, std: 0.1 }));
  w.write(seedFile);
  const headerLen = readGgufMetadata(seedFile).dataOffset;

  const r = runWithAddon(FUZZ, [seedFile, dir, String(ITERATIONS), String(headerLen)], 120000);
  expect({ signal: r.signal, status: r.status, stderr: r.stderr }).toEqual({ signal: null, status: 0, stderr: '' });
  const { counts, bad } = JSON.parse(r.stdout);
  expect(bad).toEqual([]);
  expect(Object.keys(counts).sort()).toEqual(['GGUF_INVALID', 'ok']);
  expect(counts.ok + counts.GGUF_INVALID).toBe(ITERATIONS);
  expect(counts.GGUF_INVALID).toBeGreaterThan(ITERATIONS / 4); // the mutations do hit the parser
});
