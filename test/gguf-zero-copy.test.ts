// The reader maps the file and never copies (or even touches) tensor data:
// reading a 64 MiB model's metadata must not grow the process's memory by
// anything near the file size. Measured in a fresh child process (peak RSS).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GgufWriter } from '../server/src/engine/gguf-writer';
import { runWithAddon } from './gguf-child';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-rss-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const MEASURE = `
const before = process.resourceUsage().maxRSS; // KiB
const t0 = process.hrtime.bigint();
let md;
for (let i = 0; i < 5; i++) md = addon.readGgufMetadata(args[0]);
const ms = Number(process.hrtime.bigint() - t0) / 1e6 / 5;
const after = process.resourceUsage().maxRSS;
console.log(JSON.stringify({ grewBytes: (after - before) * 1024, ms, fileSize: md.fileSize, tensors: md.tensors.length }));
`;

test('reading a 64 MiB file grows peak RSS by far less than its size', () => {
  const file = path.join(dir, 'big.gguf');
  const w = new GgufWriter();
  w.set('general.architecture', 'string', 'llama');
  const chunk = new Uint8Array(1 << 20).fill(0x3c); // non-zero data, really on disk
  for (let i = 0; i < 8; i++)
    w.addTensor(`blk.${i}.ffn_up.weight`, 'f16', [2048, 2048], (emit) => {
      for (let k = 0; k < 8; k++) emit(chunk);
    });
  const size = w.write(file);
  expect(size).toBeGreaterThan(64 * 2 ** 20);

  const r = runWithAddon(MEASURE, [file]);
  expect({ signal: r.signal, status: r.status, stderr: r.stderr }).toEqual({ signal: null, status: 0, stderr: '' });
  const m = JSON.parse(r.stdout);
  expect(m.fileSize).toBe(size);
  expect(m.tensors).toBe(8);
  expect(m.grewBytes).toBeLessThan(size / 16); // a copy, or touching the data pages, would add ~64 MiB
  expect(m.ms).toBeLessThan(50); // header-only work
});
