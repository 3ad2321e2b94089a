// The engine's ablation switches (bench ablation table, scripts/suite/ablation.ts):
// - load: 'read' holds the model in a heap copy instead of a mapping: same
//   logits, reported as info.loadMode, no mapping of the file; bad files are
//   refused the same way;
// - reuseBuffers: false allocates the step buffers in every decode (the
//   allocation counter sees it; by default a step allocates nothing), same logits.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon } from '../server/src/engine/addon';
import { Model } from '../server/src/engine/model';
import type { Session } from '../server/src/engine/types';
import { codeOf } from './helpers/errors';
import { batchOf, decodeRows, GREEDY, REFERENCE_DIR, seqEntries, TINY_MODEL } from './model-helpers';

const GQA_MODEL = path.join(REFERENCE_DIR, 'mini-llama-q8_0.gguf');
const PROMPT = [1, 450, 1024, 338, 263, 1243];

/** Lines of /proc/self/maps that map `file`. */
function mappingsOf(file: string): string[] {
  const real = fs.realpathSync(file);
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.endsWith(real));
}

/** Logits of a prompt and three greedy steps after it. */
function run(session: Session): Float32Array[] {
  const rows = decodeRows(session, seqEntries(0, PROMPT, 0));
  session.setSampler(0, GREEDY);
  let pos = PROMPT.length;
  for (let i = 0; i < 3; i++) {
    const token = session.sample(0, 0).token;
    rows.push(...decodeRows(session, seqEntries(0, [token], pos++)));
  }
  return rows;
}

test("load: 'read' gives the logits of the mapped model from a heap copy, and says so", () => {
  const mapped = Model.load(GQA_MODEL);
  expect(mapped.info.loadMode).toBe('mmap');
  expect(mappingsOf(GQA_MODEL).length).toBeGreaterThan(0);
  const a = mapped.createSession({ maxSequences: 1, contextLength: 32, threads: 1 });
  const expected = run(a);
  a.close();
  mapped.close(); // the last holder: the mapping goes
  expect(mappingsOf(GQA_MODEL)).toEqual([]);

  const read = Model.load(GQA_MODEL, { load: 'read' });
  // The weights are in this process's heap: no mapping of the file.
  expect(mappingsOf(GQA_MODEL)).toEqual([]);
  expect(read.info.loadMode).toBe('read');
  const b = read.createSession({ maxSequences: 1, contextLength: 32, threads: 1 });
  const got = run(b);
  b.close();
  expect(got).toEqual(expected);
  // Loads in the two modes are distinct models (the registry keys on the mode).
  const again = Model.load(GQA_MODEL);
  expect(again.info.instanceId).not.toBe(read.info.instanceId);
  expect(again.info.loadMode).toBe('mmap');
  again.close();
  read.close();
});

test("load: 'read' refuses bad files as the mapping does; a bad mode is INVALID_ARGUMENT", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'load-read-'));
  try {
    const truncated = path.join(dir, 'truncated.gguf');
    fs.writeFileSync(truncated, fs.readFileSync(TINY_MODEL).subarray(0, 4000));
    const empty = path.join(dir, 'empty.gguf');
    fs.writeFileSync(empty, '');
    for (const file of [truncated, empty]) {
      const mmapErr = codeOf(() => Model.load(file));
      expect(mmapErr).toBe('GGUF_INVALID');
      expect(codeOf(() => Model.load(file, { load: 'read' }))).toBe(mmapErr);
    }
    expect(codeOf(() => Model.load(path.join(dir, 'absent.gguf'), { load: 'read' }))).toBe('IO_ERROR');
    expect(codeOf(() => Model.load(TINY_MODEL, { load: 'copy' as 'read' }))).toBe('INVALID_ARGUMENT');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('reuseBuffers: false allocates the step buffers in every decode; same logits', () => {
  const addon = loadAddon();
  const model = Model.load(GQA_MODEL);
  const allocationsPerStep = (reuseBuffers: boolean | undefined): { perStep: number; logits: Float32Array[] } => {
    const s = model.createSession({ maxSequences: 1, contextLength: 32, maxBatch: 8, threads: 1, ...(reuseBuffers === undefined ? {} : { reuseBuffers }) });
    decodeRows(s, seqEntries(0, PROMPT, 0)); // warm-up
    const before = addon.heapAllocationCount() as number;
    const step = batchOf(seqEntries(0, [100], PROMPT.length));
    s.decode(step);
    const perStep = (addon.heapAllocationCount() as number) - before;
    s.clearSequence(0);
    const logits = run(s);
    s.close();
    return { perStep, logits };
  };
  const byDefault = allocationsPerStep(undefined);
  const reused = allocationsPerStep(true);
  const fresh = allocationsPerStep(false);
  expect(byDefault.perStep).toBe(0);
  expect(reused.perStep).toBe(0);
  // One allocation per activation / scratch buffer (13 of them).
  expect(fresh.perStep).toBeGreaterThanOrEqual(10);
  expect(fresh.logits).toEqual(byDefault.logits);
  model.close();
});
