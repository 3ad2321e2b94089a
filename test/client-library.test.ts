// The client library against a real server: multiplexed generations read as async
// iterators, cancel, deadlines, and a slow consumer that makes the session stop
// reading (so the server coalesces instead of the client buffering without bound).
import { status } from '@grpc/grpc-js';
import { FinishReason, GenerationError } from '../client/src/client';
import { collect, errorCode, sleep, startServer, type Running } from './service-helpers';

let s: Running;

beforeAll(async () => {
  s = await startServer({ contextLength: 2048, backpressure: { pauseTokens: 32, abortTokens: 4096, stallMs: 20_000 } });
});

afterAll(async () => {
  await s.stop();
});

const PROMPT = [1, 15043, 29892];

test('generations on one session are independent async iterators', async () => {
  const session = s.client.session();
  const a = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 20, ignoreEos: true } });
  const b = session.generate({ prompt: 'Once upon a time', params: { temperature: 0, maxTokens: 30, ignoreEos: true } });
  expect(a.requestId).not.toBe(b.requestId);
  expect(session.inFlight).toBe(2);
  const [ra, rb] = await Promise.all([collect(a), collect(b)]);
  expect(ra.tokenIds).toHaveLength(20);
  expect(rb.tokenIds).toHaveLength(30);
  expect(ra.chunks.map((c) => c.text).join('')).toBe(ra.text);
  expect(ra.clientTtftMs).toBeGreaterThan(0);
  expect(session.inFlight).toBe(0);
  await session.close();
});

test('cancel ends a generation with CANCELLED; the others go on', async () => {
  const session = s.client.session();
  const long = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 2000, ignoreEos: true }, includeBytes: true });
  const short = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 10, ignoreEos: true } });
  let seen = 0;
  for await (const c of long) {
    seen += c.tokenIds.length;
    if (seen >= 5) long.cancel();
  }
  const r = await long.result;
  expect(r.final.finishReason).toBe(FinishReason.CANCELLED);
  expect(r.final.usage!.completionTokens).toBeLessThan(2000);
  expect(r.tokenIds).toHaveLength(r.final.usage!.completionTokens);
  expect((await short.result).tokenIds).toHaveLength(10);
  await session.close();
});

test('per-generation timeout and whole-session deadline', async () => {
  const session = s.client.session();
  const g = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 2000, ignoreEos: true, logprobs: 20 }, includeBytes: true, timeoutMs: 1 });
  expect(await errorCode(g)).toBe(status.DEADLINE_EXCEEDED);
  await session.close();

  const limited = s.client.session({ deadlineMs: 50 });
  const h = limited.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 2000, ignoreEos: true } });
  await expect(h.result).rejects.toBeInstanceOf(GenerationError);
  expect(await errorCode(h)).toBe(status.DEADLINE_EXCEEDED);
  await limited.closed;
  // A generation started on a closed session fails at once.
  expect(await errorCode(limited.generate({ tokens: PROMPT }))).toBe(status.DEADLINE_EXCEEDED);
});

test('a slow consumer stops the session reading: chunks arrive coalesced, nothing lost', async () => {
  const session = s.client.session({ maxBuffered: 4 });
  const gen = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 1500, ignoreEos: true, logprobs: 20 }, includeBytes: true });
  const it = gen[Symbol.asyncIterator]();
  const first = await it.next();
  expect(first.done).toBe(false);
  await sleep(800); // not consuming
  let tokens = (first.value as { tokenIds: number[] }).tokenIds.length;
  let biggest = 0;
  let chunks = 1;
  for (;;) {
    const n = await it.next();
    if (n.done) break;
    chunks++;
    tokens += n.value.tokenIds.length;
    biggest = Math.max(biggest, n.value.tokenIds.length);
  }
  const r = await gen.result;
  expect(tokens).toBe(1500);
  expect(r.final.usage!.completionTokens).toBe(1500);
  expect(chunks).toBeLessThan(1500);
  expect(biggest).toBeGreaterThanOrEqual(32); // the server paused and coalesced
  await session.close();
});

test('unary helpers and health', async () => {
  expect(await s.client.healthStatus()).toBe('SERVING');
  await s.client.waitUntilServing(1000);
  const models = await s.client.listModels();
  expect(models.map((m) => m.name)).toEqual(['tiny']);
  const t = await s.client.tokenize({ text: 'Hello' });
  expect((await s.client.detokenize({ tokens: t.tokens.slice(1) })).text.trim()).toBe('Hello');
});
