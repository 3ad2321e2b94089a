// Sessions on worker threads share the model the process already loaded: one
// native mapping, whoever loads it first, and each worker's session computes
// what the main thread's does.
import { Worker } from 'node:worker_threads';
import * as path from 'node:path';
import { Model } from '../server/src/engine/model';
import { builtModule } from './helpers/dist';
import { REFERENCE_DIR, decodeRows, seqEntries } from './model-helpers';

const FILE = path.join(REFERENCE_DIR, 'mini-llama-q8_0.gguf');
const PROMPT = [1, 450, 439, 860, 289, 798];

function inWorker(modelJs: string): Promise<{ instanceId: number; logits: number[] }> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { Model, createBatch } = require(workerData.modelJs);
    const m = Model.load(workerData.file);
    const s = m.createSession({ maxSequences: 1, contextLength: 32, threads: 1 });
    const b = createBatch(workerData.prompt.length);
    workerData.prompt.forEach((t, i) => { b.seq[i] = 0; b.token[i] = t; b.pos[i] = i; b.logits[i] = i === workerData.prompt.length - 1 ? 1 : 0; });
    b.length = workerData.prompt.length;
    const logits = Array.from(s.decode(b));
    parentPort.postMessage({ instanceId: m.info.instanceId, logits });
    s.close();
    m.close();
  `;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { modelJs, file: FILE, prompt: PROMPT } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

test('workers reuse the model loaded by the main thread and compute the same logits', async () => {
  const modelJs = builtModule('server/src/engine/model');
  const main = Model.load(FILE);
  const s = main.createSession({ maxSequences: 1, contextLength: 32, threads: 1 });
  const expected = decodeRows(s, seqEntries(0, PROMPT, 0))[0];
  const [a, b] = await Promise.all([inWorker(modelJs), inWorker(modelJs)]);
  expect(a.instanceId).toBe(main.info.instanceId);
  expect(b.instanceId).toBe(main.info.instanceId);
  expect(Float32Array.from(a.logits)).toEqual(expected);
  expect(Float32Array.from(b.logits)).toEqual(expected);
  s.close();
  main.close();
});

test('a model nobody holds any more is unloaded; loading it again maps a new instance', () => {
  const first = Model.load(FILE);
  const id = first.info.instanceId;
  const again = Model.load(FILE);
  expect(again.info.instanceId).toBe(id); // shared while held
  first.close();
  again.close();
  const later = Model.load(FILE);
  expect(later.info.instanceId).not.toBe(id);
  later.close();
});

test('a session keeps its model alive after the model handle is closed', () => {
  const m = Model.load(FILE);
  const s = m.createSession({ maxSequences: 1, contextLength: 32, threads: 1 });
  m.close();
  expect(decodeRows(s, seqEntries(0, PROMPT, 0))[0].length).toBe(2048);
  s.close();
});
