// Several real models on one server (llama Q4_K_M, qwen2 Q8_0 and the bundled
// model), two workers each: routing by `model`, health per model, greedy output
// equal to llama.cpp's through the whole service, batching across workers that
// leaves results unchanged, and a cancel that lands in the middle of a prompt.
import * as path from 'node:path';
import { status } from '@grpc/grpc-js';
import { FinishReason } from '../client/src/client';
import { collect, errorCode, sleep, startServer, TINY_MODEL, type Running } from './service-helpers';

const REF = path.resolve(__dirname, 'fixtures/reference');
const reference = require('./fixtures/reference/llama-cpp-reference.json') as {
  models: Record<string, Array<{ prompt_ids: number[]; generated: number[]; steps: Array<{ top5: Array<[number, number]> }> }>>;
};

let s: Running;

beforeAll(async () => {
  s = await startServer({
    models: [
      { name: 'tiny', path: TINY_MODEL },
      { name: 'llama', path: path.join(REF, 'mini-llama-q4_k_m.gguf') },
      { name: 'qwen', path: path.join(REF, 'mini-qwen2-q8_0.gguf') },
      { name: 'f16', path: path.join(REF, 'mini-llama-f16.gguf') },
    ],
    workers: 2,
    maxSequences: 4,
    contextLength: 512,
    prefillChunk: 16,
  });
});

afterAll(async () => {
  await s.stop();
});

test('every model is listed, healthy and routed to by name', async () => {
  const models = await s.client.listModels();
  expect(models.map((m) => [m.name, m.architecture, m.isDefault, m.workers])).toEqual([
    ['tiny', 'llama', true, 2],
    ['llama', 'llama', false, 2],
    ['qwen', 'qwen2', false, 2],
    ['f16', 'llama', false, 2],
  ]);
  expect(models[1].weightTypes.q4_K).toBeGreaterThan(0);
  expect(models[1].weightTypes.q6_K).toBeGreaterThan(0);
  expect(models[2].weightTypes.q8_0).toBeGreaterThan(0);
  expect(models[1].vocabSize).toBe(2048);
  for (const name of ['tiny', 'llama', 'qwen']) expect(await s.client.healthStatus(name)).toBe('SERVING');
  // Token 2047 exists in the mini models, 5000 only in the bundled one.
  expect(await errorCode(s.client.complete({ model: 'llama', tokens: [1, 5000] }))).toBe(status.INVALID_ARGUMENT);
  expect((await collect(s.client.complete({ model: '', tokens: [1, 5000], params: { maxTokens: 2 } }))).tokenIds).toHaveLength(2);
});

/**
 * Greedy ids equal llama.cpp's up to the end or to its first near tie (top two
 * within `tie`): 0.001 for F16 (the reference's rule), 0.12 for quantized files,
 * where 8-bit activation rounding moves logprobs that much (see parity.test.ts).
 */
function expectGreedyParity(ours: number[], ref: { generated: number[]; steps: Array<{ top5: Array<[number, number]> }> }, tie: number): void {
  const upTo = ref.steps.findIndex((st) => st.top5[0][1] - st.top5[1][1] < tie);
  const n = upTo < 0 ? ref.generated.length : upTo;
  expect(ours.slice(0, n)).toEqual(ref.generated.slice(0, n));
}

test.each([
  ['f16', 'mini-llama-f16.gguf', 0.001],
  ['llama', 'mini-llama-q4_k_m.gguf', 0.12],
  ['qwen', 'mini-qwen2-q8_0.gguf', 0.12],
] as const)('greedy generation through the service matches llama.cpp (%s)', async (model, file, tie) => {
  for (const ref of reference.models[file]) {
    const r = await collect(s.client.complete({ model, tokens: ref.prompt_ids, params: { temperature: 0, maxTokens: 32, ignoreEos: true } }));
    expectGreedyParity(r.tokenIds, ref, tie);
  }
});

test('8 generations batched over 2 workers match their solo runs (Q4_K_M)', async () => {
  const refs = reference.models['mini-llama-q4_k_m.gguf'];
  const prompts = Array.from({ length: 8 }, (_, i) => [...refs[i % 3].prompt_ids, ...Array.from({ length: i * 5 }, (_, j) => 100 + ((i * 31 + j * 17) % 1900))]);
  const params = { temperature: 0, maxTokens: 24, ignoreEos: true };
  const alone: number[][] = [];
  for (const tokens of prompts) alone.push((await collect(s.client.complete({ model: 'llama', tokens, params }))).tokenIds);
  const session = s.client.session();
  const together = await Promise.all(prompts.map((tokens) => collect(session.generate({ model: 'llama', tokens, params }))));
  together.forEach((r, i) => expect(r.tokenIds).toEqual(alone[i]));
  // Seeded sampling is per sequence too: batching does not change it either.
  const sampled = { temperature: 0.9, topK: 0, topP: 1, minP: 0, seed: 42, maxTokens: 24, ignoreEos: true };
  const soloSampled = (await collect(s.client.complete({ model: 'qwen', tokens: prompts[0], params: sampled }))).tokenIds;
  const mixed = await Promise.all([0, 1, 2, 3].map((i) => collect(session.generate({ model: 'qwen', tokens: prompts[i], params: i === 0 ? sampled : params }))));
  expect(mixed[0].tokenIds).toEqual(soloSampled);
  await session.close();
});

test('a cancel stops a generation in the middle of its prompt', async () => {
  // One prompt token per step: a 1000-token prompt takes 1000 steps to read.
  const slow = await startServer({ models: [{ name: 'f16', path: path.join(REF, 'mini-llama-f16.gguf') }], contextLength: 1024, prefillChunk: 1 });
  try {
    const tokens = [1, ...Array.from({ length: 999 }, (_, j) => 100 + ((j * 37) % 1900))];
    const full = await collect(slow.client.complete({ tokens, params: { temperature: 0, maxTokens: 1 } }));
    const prefillMs = full.final.timings!.timeToFirstTokenMs;
    const session = slow.client.session();
    const gen = session.generate({ tokens, params: { temperature: 0, maxTokens: 1 } });
    await sleep(prefillMs / 10);
    const t0 = performance.now();
    gen.cancel();
    const r = await gen.result;
    const took = performance.now() - t0;
    expect(r.final.finishReason).toBe(FinishReason.CANCELLED);
    expect(r.final.usage!.completionTokens).toBe(0);
    // Stopped within a step or so, not after reading the rest of the prompt.
    expect(took).toBeLessThan(prefillMs / 2);
    // The slot is free and the session usable.
    expect((await collect(session.generate({ tokens: [1, 2, 3], params: { maxTokens: 2 } }))).tokenIds).toHaveLength(2);
    await session.close();
  } finally {
    await slow.stop();
  }
});
