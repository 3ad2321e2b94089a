// Continuous batching must not change results: greedy tokens of generations
// batched together (8 multiplexed on one stream, 8 on 8 streams, a long prompt
// chunked in between running streams) equal those of each request run alone.
import { collect, startServer, type Running } from './service-helpers';

let s: Running;

beforeAll(async () => {
  s = await startServer({ maxSequences: 8, prefillChunk: 32 });
});

afterAll(async () => {
  await s.stop();
});

const N = 8;
const params = { temperature: 0, maxTokens: 40, ignoreEos: true };
/** Eight different prompts of different lengths (one spans several prefill chunks). */
const prompts: number[][] = Array.from({ length: N }, (_, i) => [1, ...Array.from({ length: 3 + i * 13 }, (_, j) => 100 + ((i * 7919 + j * 104729) % 31000))]);

let alone: number[][];

beforeAll(async () => {
  // Each request alone, one after the other.
  alone = [];
  for (const tokens of prompts) alone.push((await collect(s.client.complete({ tokens, params }))).tokenIds);
  expect(alone.every((t) => t.length === params.maxTokens)).toBe(true);
});

test('8 generations multiplexed on one stream match their solo runs', async () => {
  const session = s.client.session();
  const gens = prompts.map((tokens, i) => session.generate({ requestId: `r${i}`, tokens, params }));
  const results = await Promise.all(gens.map(collect));
  results.forEach((r, i) => {
    expect(r.requestId).toBe(`r${i}`);
    expect(r.tokenIds).toEqual(alone[i]);
  });
  await session.close();
});

test('8 generations on 8 streams at once match their solo runs', async () => {
  const sessions = prompts.map(() => s.client.session());
  const results = await Promise.all(sessions.map((sess, i) => collect(sess.generate({ tokens: prompts[i], params }))));
  results.forEach((r, i) => expect(r.tokenIds).toEqual(alone[i]));
  await Promise.all(sessions.map((x) => x.close()));
});

test('a long prompt is read in chunks while running streams keep getting tokens', async () => {
  const session = s.client.session();
  // One generation running...
  const running = session.generate({ tokens: prompts[0], params: { ...params, maxTokens: 400 } });
  const seen: number[] = [];
  const iter = (async () => {
    for await (const c of running) seen.push(...c.tokenIds);
  })();
  while (seen.length < 5) await new Promise((r) => setTimeout(r, 1));
  // ...then a prompt of 600 tokens (19 chunks of 32): the running stream must not wait for all of it.
  const longPrompt = [1, ...Array.from({ length: 600 }, (_, j) => 200 + ((j * 7907) % 30000))];
  const before = seen.length;
  const long = session.generate({ tokens: longPrompt, params: { ...params, maxTokens: 1 } });
  const longResult = await long.result;
  const during = seen.length - before;
  expect(longResult.tokenIds).toHaveLength(1);
  // The prompt took 19 steps, each also decoding a token of the running generation
  // (read in one piece it would have held that generation up for the whole prompt).
  // Some slack: tokens of the last steps may still be on their way.
  expect(during).toBeGreaterThanOrEqual(8);
  await iter;
  const r = await running.result;
  // Unchanged by the long prompt's chunks sharing its steps.
  const solo = await collect(s.client.complete({ tokens: prompts[0], params: { ...params, maxTokens: 400 } }));
  expect(r.tokenIds).toEqual(solo.tokenIds);
  const soloLong = await collect(s.client.complete({ tokens: longPrompt, params: { ...params, maxTokens: 1 } }));
  expect(longResult.tokenIds).toEqual(soloLong.tokenIds);
  await session.close();
});
