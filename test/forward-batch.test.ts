// Batched decode: many sequences in one forward pass give what each gives
// alone; slots clear and reuse; bad batches are refused with coded errors and
// change nothing; a decode step allocates nothing on the native heap.
import * as path from 'node:path';
import { loadAddon } from '../server/src/engine/addon';
import { Model, Session, createBatch } from '../server/src/engine/model';
import { REFERENCE_DIR, Entry, batchOf, decodeRows, maxAbsDiff, seqEntries } from './model-helpers';
import { codeOf } from './helpers/errors';

const GQA_MODEL = path.join(REFERENCE_DIR, 'mini-llama-q8_0.gguf'); // GQA, 2 layers
const QWEN_MODEL = path.join(REFERENCE_DIR, 'mini-qwen2-q8_0.gguf'); // biases, neox RoPE

const PROMPTS = [
  [1, 1551, 346, 701, 265, 263, 931],
  [1, 450, 439, 860, 289, 798, 113, 1701, 123, 432, 398],
  [1, 379, 295, 417, 47],
  [1, 22, 33, 44],
];
// Logits of a row must not depend on what else is in the batch. The kernels
// compute each row alone today (exactly equal); a little room for GEMM tiling.
const BATCH_TOL = 1e-4;

describe.each([
  ['llama GQA q8_0', GQA_MODEL],
  ['qwen2 q8_0', QWEN_MODEL],
])('batched decode (%s)', (_label, file) => {
  let model: Model;
  beforeAll(() => {
    model = Model.load(file);
  });
  afterAll(() => model.close());

  function fresh(maxSequences = 4): Session {
    return model.createSession({ maxSequences, contextLength: 64, maxBatch: 64, maxOutputs: 32, threads: 2 });
  }

  /** Each prompt alone in its own session: prompt logits, then 3 decode steps with fixed tokens. */
  function alone(prompt: number[]): Float32Array[] {
    const s = fresh(1);
    const rows = [decodeRows(s, seqEntries(0, prompt, 0))[0]];
    for (let i = 0; i < 3; i++) rows.push(decodeRows(s, seqEntries(0, [100 + i], prompt.length + i))[0]);
    s.close();
    return rows;
  }

  test('sequences batched together (prompt chunks and decode tokens mixed) match each decoded alone', () => {
    const expected = PROMPTS.map(alone);
    const s = fresh();
    // Step 1: seq 0 and 1 prompts whole, seq 2 the first half of its prompt (no logits).
    const got: Float32Array[][] = PROMPTS.map(() => []);
    let rows = decodeRows(s, [...seqEntries(0, PROMPTS[0], 0), ...seqEntries(1, PROMPTS[1], 0), ...seqEntries(2, PROMPTS[2].slice(0, 2), 0).map((e) => ({ ...e, logits: false }))]);
    got[0].push(rows[0]);
    got[1].push(rows[1]);
    // Step 2: seq 2 finishes its prompt, seq 3 starts, seq 0 and 1 decode; interleaved order.
    rows = decodeRows(s, [
      { seq: 0, token: 100, pos: PROMPTS[0].length, logits: true },
      ...seqEntries(2, PROMPTS[2].slice(2), 2),
      { seq: 1, token: 100, pos: PROMPTS[1].length, logits: true },
      ...seqEntries(3, PROMPTS[3], 0),
    ]);
    got[0].push(rows[0]);
    got[2].push(rows[1]);
    got[1].push(rows[2]);
    got[3].push(rows[3]);
    // Steps 3..: everyone decodes until each has its prompt row and 3 decode rows.
    for (let step = 0; step < 3; step++) {
      const entries: Entry[] = [];
      PROMPTS.forEach((p, seq) => {
        const n = got[seq].length; // rows so far = decode tokens fed + 1
        if (n < 4) entries.push({ seq, token: 100 + n - 1, pos: p.length + n - 1, logits: true });
      });
      if (!entries.length) break;
      rows = decodeRows(s, entries);
      entries.forEach((e, i) => got[e.seq].push(rows[i]));
    }
    PROMPTS.forEach((p, seq) => {
      expect(got[seq]).toHaveLength(4);
      got[seq].forEach((row, i) => expect(maxAbsDiff(row, expected[seq][i])).toBeLessThan(BATCH_TOL));
      expect(s.sequenceLength(seq)).toBe(p.length + 3);
    });
    s.close();
  });

  test('a cleared slot is reused from position 0 and gives what a fresh session gives', () => {
    const s = fresh(2);
    decodeRows(s, seqEntries(0, PROMPTS[1], 0));
    decodeRows(s, seqEntries(1, PROMPTS[2], 0));
    s.clearSequence(0);
    expect(s.sequenceLength(0)).toBe(0);
    expect(s.sequenceLength(1)).toBe(PROMPTS[2].length);
    const reused = decodeRows(s, seqEntries(0, PROMPTS[0], 0))[0];
    expect(maxAbsDiff(reused, alone(PROMPTS[0])[0])).toBeLessThan(BATCH_TOL);
    // the other slot is untouched: its next step matches a run that never shared the session
    const other = decodeRows(s, seqEntries(1, [100], PROMPTS[2].length))[0];
    expect(maxAbsDiff(other, alone(PROMPTS[2])[1])).toBeLessThan(BATCH_TOL);
    s.close();
  });

  test('an F32 KV cache gives nearly the same logits as the F16 default', () => {
    const s32 = model.createSession({ maxSequences: 1, contextLength: 64, kvType: 'f32', threads: 2 });
    const a = decodeRows(s32, seqEntries(0, PROMPTS[1], 0))[0];
    const b = alone(PROMPTS[1])[0];
    // F16 keys/values differ from F32 in the 4th significant digit; on these
    // quantized random models that moves logits by a few hundredths at most.
    expect(maxAbsDiff(a, b)).toBeLessThan(0.3);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(0); // it is really another cache type
    s32.close();
  });
});

describe('bad batches', () => {
  let model: Model;
  let s: Session;
  beforeAll(() => {
    model = Model.load(GQA_MODEL);
    s = model.createSession({ maxSequences: 2, contextLength: 16, maxBatch: 8, maxOutputs: 2, threads: 1 });
  });
  afterAll(() => {
    s.close();
    model.close();
  });

  test.each<[string, Entry[], string, RegExp]>([
    ['sequence id out of range', [{ seq: 2, token: 1, pos: 0, logits: true }], 'INVALID_ARGUMENT', /sequence id 2/],
    ['negative sequence id', [{ seq: -1, token: 1, pos: 0, logits: true }], 'INVALID_ARGUMENT', /sequence id -1/],
    ['token past the vocabulary', [{ seq: 0, token: 2048, pos: 0, logits: true }], 'INVALID_ARGUMENT', /token 2048/],
    ['negative token', [{ seq: 0, token: -5, pos: 0, logits: true }], 'INVALID_ARGUMENT', /token -5/],
    ['position not where the sequence is', [{ seq: 0, token: 1, pos: 1, logits: true }], 'INVALID_ARGUMENT', /expects position 0, got 1/],
    ['positions not consecutive', [{ seq: 0, token: 1, pos: 0, logits: false }, { seq: 0, token: 1, pos: 2, logits: true }], 'INVALID_ARGUMENT', /expects position 1, got 2/],
    ['position repeated', [{ seq: 0, token: 1, pos: 0, logits: false }, { seq: 0, token: 1, pos: 0, logits: true }], 'INVALID_ARGUMENT', /expects position 1, got 0/],
    ['more entries than maxBatch', seqEntries(0, [1, 2, 3, 4, 5, 6, 7, 8, 9], 0), 'INVALID_ARGUMENT', /maxBatch/],
    ['more logits rows than maxOutputs', seqEntries(0, [1, 2, 3], 0, 'all'), 'INVALID_ARGUMENT', /maxOutputs/],
  ])('%s', (_label, entries, code, message) => {
    const before = [s.sequenceLength(0), s.sequenceLength(1)];
    let err: (Error & { code?: string }) | undefined;
    try {
      s.decode(batchOf(entries));
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err?.code).toBe(code);
    expect(err?.message).toMatch(message);
    expect([s.sequenceLength(0), s.sequenceLength(1)]).toEqual(before); // nothing changed
  });

  test('a full sequence refuses more tokens with OUT_OF_RANGE; the cache is left as it was', () => {
    const tokens = Array.from({ length: 16 }, (_, i) => 10 + i);
    decodeRows(s, seqEntries(1, tokens.slice(0, 8), 0));
    decodeRows(s, seqEntries(1, tokens.slice(8), 8));
    expect(s.sequenceLength(1)).toBe(16);
    expect(codeOf(() => s.decode(batchOf([{ seq: 1, token: 1, pos: 16, logits: true }])))).toBe('OUT_OF_RANGE');
    expect(s.sequenceLength(1)).toBe(16);
    s.clearSequence(1);
  });

  test('an empty batch, short arrays and wrong array types are refused', () => {
    const b = createBatch(4);
    b.length = 0;
    expect(codeOf(() => s.decode(b))).toBe('INVALID_ARGUMENT');
    b.length = 5; // longer than the arrays
    expect(codeOf(() => s.decode(b))).toBe('INVALID_ARGUMENT');
    const wrong = { ...createBatch(1), length: 1, token: new Float32Array(1) as unknown as Int32Array };
    expect(codeOf(() => s.decode(wrong))).toBe('INVALID_ARGUMENT');
  });

  test('sampler settings are checked; top logprobs come sorted and sum below 1', () => {
    const greedy = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, penaltyLastN: 64, seed: 1, topLogprobs: 3 };
    expect(codeOf(() => s.setSampler(0, { ...greedy, seed: 2 ** 40 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => s.setSampler(0, { ...greedy, topLogprobs: 21 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => s.setSampler(5, greedy))).toBe('INVALID_ARGUMENT');
    s.setSampler(0, greedy);
    decodeRows(s, seqEntries(0, [1, 2], 0));
    const r = s.sample(0, 0);
    expect(r.top).toHaveLength(3);
    expect(r.top![0]).toEqual({ token: r.token, logprob: r.logprob });
    expect(r.top![0].logprob).toBeGreaterThanOrEqual(r.top![1].logprob);
    expect(r.top![1].logprob).toBeGreaterThanOrEqual(r.top![2].logprob);
    expect(r.top!.reduce((a, t) => a + Math.exp(t.logprob), 0)).toBeLessThan(1);
    s.clearSequence(0);
  });

  test('sample() checks the row and that it belongs to the sequence', () => {
    decodeRows(s, seqEntries(0, [1, 2], 0));
    expect(codeOf(() => s.sample(0, 1))).toBe('INVALID_ARGUMENT'); // only row 0 exists
    expect(codeOf(() => s.sample(1, 0))).toBe('INVALID_ARGUMENT'); // row 0 is sequence 0's
    expect(s.sample(0, 0).token).toBeGreaterThanOrEqual(0);
    s.clearSequence(0);
  });

  test('bad session options are refused', () => {
    expect(codeOf(() => model.createSession({ maxSequences: 0, contextLength: 16 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => model.createSession({ maxSequences: 1, contextLength: 1e12 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => model.createSession({ maxSequences: 1.5, contextLength: 16 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => model.createSession({ maxSequences: 1, contextLength: 16, threads: -1 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => model.createSession({ maxSequences: 1, contextLength: 1 << 20 }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => model.createSession({ maxSequences: 1, contextLength: 16, kvType: 'q8' as 'f16' }))).toBe('INVALID_ARGUMENT');
  });

  test('a closed session refuses calls with CLOSED', () => {
    const t = model.createSession({ maxSequences: 1, contextLength: 8, threads: 1 });
    t.close();
    expect(codeOf(() => t.decode(batchOf(seqEntries(0, [1], 0))))).toBe('CLOSED');
    t.close(); // idempotent
  });
});

test('a decode step (and sampling) performs no heap allocation in native code', () => {
  const addon = loadAddon();
  const model = Model.load(GQA_MODEL);
  const s = model.createSession({ maxSequences: 3, contextLength: 64, maxBatch: 32, threads: 2 });
  s.setSampler(0, { temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.1, frequencyPenalty: 0.1, penaltyLastN: 64, seed: 7, topLogprobs: 5 });
  const prompt = batchOf([...seqEntries(0, PROMPTS[0], 0), ...seqEntries(1, PROMPTS[1], 0)]);
  const step = createBatch(3);
  s.decode(prompt); // warm-up: first-touch work anywhere lazy happens here, not in the measured loop
  let pos0 = PROMPTS[0].length;
  let pos1 = PROMPTS[1].length;
  const before = addon.heapAllocationCount() as number;
  for (let i = 0; i < 10; i++) {
    step.length = 2;
    step.seq[0] = 0;
    step.token[0] = 100 + i;
    step.pos[0] = pos0++;
    step.logits[0] = 1;
    step.seq[1] = 1;
    step.token[1] = 200 + i;
    step.pos[1] = pos1++;
    step.logits[1] = 1;
    s.decode(step);
    s.sample(0, 0); // seeded top-k/top-p/penalties sampler
    s.sample(1, 1); // greedy
  }
  const after = addon.heapAllocationCount() as number;
  expect(after - before).toBe(0);
  // the counter is live: creating a session allocates
  const t = model.createSession({ maxSequences: 1, contextLength: 8, threads: 1 });
  expect(addon.heapAllocationCount() as number).toBeGreaterThan(after);
  t.close();
  s.close();
  model.close();
});
