// End to end over loopback with the real engine: every RPC, the stream guarantees
// (ordered chunks, exactly one terminal, no leaked stop strings, complete UTF-8),
// health and reflection — also the way grpcurl calls them, from JSON with
// reflected schemas only.
import { status } from '@grpc/grpc-js';
import { FinishReason } from '../client/src/client';
import type { Worker } from 'node:worker_threads';
import { collect, errorCode, sleep, startServer, type Running } from './service-helpers';
import type { EngineWorker } from '../server/src/engine/worker-pool';
import { dynamicCall, rawCall, reflect } from './grpc-helpers';
import { GenerateRequest } from '../server/src/generated/tokenstream/v1/tokenstream';

let s: Running;

beforeAll(async () => {
  s = await startServer();
});

afterAll(async () => {
  await s.stop();
});

const PROMPT_IDS = [1, 15043, 29892]; // <s> Hello,
const greedy = { temperature: 0, maxTokens: 24, ignoreEos: true };

test('health reports SERVING and reflection lists tokenstream.v1.TokenStream', async () => {
  expect(await s.client.healthStatus('')).toBe('SERVING');
  expect(await s.client.healthStatus('tokenstream.v1.TokenStream')).toBe('SERVING');
  expect(await s.client.healthStatus('tiny')).toBe('SERVING');
  const { services, registry } = await reflect(s.address);
  expect(services).toContain('tokenstream.v1.TokenStream');
  expect(registry.getService('tokenstream.v1.TokenStream')!.methods).toHaveLength(5);
});

test('ListModels describes the model', async () => {
  const [m] = await s.client.listModels();
  expect(m).toMatchObject({ name: 'tiny', architecture: 'llama', vocabSize: 32000, workers: 1, maxSequences: 8, isDefault: true, sessionContextLength: 1024 });
  expect(m.contextLength).toBe(4096);
  expect(m.parameterCount).toBeGreaterThan(0);
  expect(m.weightTypes.f16).toBeGreaterThan(0);
  expect(['scalar', 'avx2', 'avx512', 'neon']).toContain(m.cpuPath);
});

test('Tokenize and Detokenize round-trip', async () => {
  const t = await s.client.tokenize({ text: 'Hello, world' });
  expect(t.tokens[0]).toBe(1); // BOS added by default
  expect(t.tokens.length).toBeGreaterThan(2);
  expect(t.pieces).toHaveLength(t.tokens.length);
  const noBos = await s.client.tokenize({ text: 'Hello, world', addSpecial: false });
  expect(noBos.tokens).toEqual(t.tokens.slice(1));
  const d = await s.client.detokenize({ tokens: noBos.tokens });
  expect(d.text.trim()).toBe('Hello, world');
  expect(Buffer.concat(t.pieces.slice(1)).equals(d.raw)).toBe(true);
  await expect(s.client.detokenize({ tokens: [32000] })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
});

test('Complete streams ordered chunks and one final; text matches Detokenize', async () => {
  const r = await collect(s.client.complete({ tokens: PROMPT_IDS, params: greedy }));
  expect(r.final.finishReason).toBe(FinishReason.LENGTH);
  expect(r.final.usage).toEqual({ promptTokens: 3, completionTokens: 24 });
  expect(r.tokenIds).toHaveLength(24);
  let index = 0;
  for (const c of r.chunks) {
    expect(c.index).toBe(index);
    index += c.tokenIds.length;
  }
  const d = await s.client.detokenize({ tokens: r.tokenIds });
  expect(r.text).toBe(d.text);
  expect(r.final.timings!.totalMs).toBeGreaterThan(0);
  expect(r.final.timings!.timeToFirstTokenMs).toBeGreaterThan(0);
  expect(r.final.timings!.decodeTokensPerSecond).toBeGreaterThan(0);
});

test('Generate gives the same greedy tokens as Complete; seeded sampling repeats', async () => {
  const session = s.client.session();
  const viaGenerate = await collect(session.generate({ tokens: PROMPT_IDS, params: greedy }));
  const viaComplete = await collect(s.client.complete({ tokens: PROMPT_IDS, params: greedy }));
  expect(viaGenerate.tokenIds).toEqual(viaComplete.tokenIds);

  const sampled = { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1234, maxTokens: 24, ignoreEos: true };
  const a = await collect(session.generate({ prompt: 'Once upon a time', params: sampled }));
  const b = await collect(session.generate({ prompt: 'Once upon a time', params: sampled }));
  expect(a.tokenIds).toEqual(b.tokenIds);
  const c = await collect(session.generate({ prompt: 'Once upon a time', params: { ...sampled, seed: 99 } }));
  expect(c.tokenIds).not.toEqual(a.tokenIds);
  await session.close();
});

test('logprobs and raw bytes when asked for', async () => {
  const r = await collect(s.client.complete({ tokens: PROMPT_IDS, params: { ...greedy, logprobs: 3 }, includeBytes: true }));
  const lps = r.chunks.flatMap((c) => c.logprobs);
  expect(lps.map((l) => l.tokenId)).toEqual(r.tokenIds);
  for (const l of lps) {
    expect(l.logprob).toBeLessThanOrEqual(0);
    expect(l.top).toHaveLength(3);
    // Greedy: the chosen token is the most likely one.
    expect(l.top[0].tokenId).toBe(l.tokenId);
  }
  const raw = Buffer.concat(r.chunks.map((c) => c.raw));
  const d = await s.client.detokenize({ tokens: r.tokenIds });
  expect(raw.equals(d.raw)).toBe(true);
  // No logprobs unless asked.
  const plain = await collect(s.client.complete({ tokens: PROMPT_IDS, params: greedy }));
  expect(plain.chunks.every((c) => c.logprobs.length === 0 && c.raw.length === 0)).toBe(true);
});

test('a stop string ends the generation and is never sent', async () => {
  const full = await collect(s.client.complete({ tokens: PROMPT_IDS, params: { ...greedy, maxTokens: 48 } }));
  // A stop string from the middle of the greedy text, crossing token boundaries.
  const text = full.text;
  const from = Math.floor(text.length / 2);
  const stop = text.slice(from, from + 5);
  expect(stop.length).toBe(5);
  const r = await collect(s.client.complete({ tokens: PROMPT_IDS, params: { ...greedy, maxTokens: 48, stop: ['§never§', stop] } }));
  expect(r.final.finishReason).toBe(FinishReason.STOP_SEQUENCE);
  expect(r.final.matchedStop).toBe(stop);
  expect(r.text).toBe(text.slice(0, text.indexOf(stop)));
  expect(r.chunks.map((c) => c.text).join('')).not.toContain(stop);
  // A stop string that never matches: the held-back tail is flushed at the end.
  const tail = text.slice(-3);
  const noMatch = await collect(s.client.complete({ tokens: PROMPT_IDS, params: { ...greedy, maxTokens: 48, stop: [`${tail}§`] } }));
  expect(noMatch.final.finishReason).toBe(FinishReason.LENGTH);
  expect(noMatch.text).toBe(text);
});

test('chunks never split a UTF-8 character', async () => {
  // High-temperature sampling over the Llama vocabulary emits byte tokens (<0xE6>...)
  // whose characters span several tokens and chunks.
  const r = await collect(s.client.complete({ prompt: '日本語のテキスト', params: { temperature: 2, topK: 0, topP: 1, minP: 0, seed: 7, maxTokens: 200, ignoreEos: true } }));
  const d = await s.client.detokenize({ tokens: r.tokenIds });
  // Streaming gives exactly the text of decoding everything at once: no chunk
  // boundary added a replacement character or lost a byte.
  expect(r.chunks.map((c) => c.text).join('')).toBe(d.text);
  const fffd = (t: string): number => t.split('\uFFFD').length - 1;
  expect(r.chunks.reduce((n, c) => n + fffd(c.text), 0)).toBe(fffd(d.text));
});

test('a bad request fails Complete with its status', async () => {
  expect(await errorCode(s.client.complete({ prompt: '' }))).toBe(status.INVALID_ARGUMENT);
  expect(await errorCode(s.client.complete({ prompt: 'x', model: 'nope' }))).toBe(status.NOT_FOUND);
  expect(await errorCode(s.client.complete({ prompt: 'x', params: { topP: 0 } }))).toBe(status.INVALID_ARGUMENT);
});

describe('grpcurl-style calls (JSON in, JSON out, schemas from reflection only)', () => {
  test('every TokenStream method', async () => {
    const { registry } = await reflect(s.address);
    const list = await dynamicCall(s.address, registry, 'tokenstream.v1.TokenStream/ListModels', [{}]);
    expect(list.error).toBeUndefined();
    expect(JSON.stringify(list.messages[0])).toContain('"architecture":"llama"');

    const tok = await dynamicCall(s.address, registry, 'tokenstream.v1.TokenStream/Tokenize', [{ text: 'Hello' }]);
    const ids = (tok.messages[0] as { tokens: number[] }).tokens;
    expect(ids[0]).toBe(1);

    const detok = await dynamicCall(s.address, registry, 'tokenstream.v1.TokenStream/Detokenize', [{ tokens: ids.slice(1) }]);
    expect((detok.messages[0] as { text: string }).text.trim()).toBe('Hello');

    // The README's Complete example, proto field names as grpcurl users write them.
    const complete = await dynamicCall(s.address, registry, 'tokenstream.v1.TokenStream/Complete', [
      { prompt: 'Once upon a time', params: { max_tokens: 16, temperature: 0 } },
    ]);
    expect(complete.error).toBeUndefined();
    const last = complete.messages[complete.messages.length - 1] as { final: { finishReason: string; usage: { completionTokens: number } } };
    expect(['LENGTH', 'STOP']).toContain(last.final.finishReason);
    expect(complete.messages.slice(0, -1).every((m) => 'chunk' in (m as object))).toBe(true);

    // The README's bidirectional example (`-d @` with two messages, then EOF).
    const bidi = await dynamicCall(s.address, registry, 'tokenstream.v1.TokenStream/Generate', [
      { request_id: 'a', prompt: 'Once upon a time', params: { max_tokens: 8 } },
      { request_id: 'b', tokens: [1, 15043, 29892], params: { max_tokens: 8, temperature: 0 } },
    ]);
    expect(bidi.error).toBeUndefined();
    const finals = bidi.messages.filter((m) => 'final' in (m as object)) as Array<{ requestId: string }>;
    expect(finals.map((f) => f.requestId).sort()).toEqual(['a', 'b']);

    const check = await dynamicCall(s.address, registry, 'grpc.health.v1.Health/Check', [{ service: 'tiny' }]);
    expect(check.messages).toEqual([{ status: 'SERVING' }]);
  });
});

test('a model whose workers all stopped answers UNAVAILABLE and goes NOT_SERVING', async () => {
  const own = await startServer({ backpressure: { pauseTokens: 16, abortTokens: 4096, stallMs: 20_000 } });
  try {
    // A generation held in its worker, paused because its client does not read
    // (so the worker is idle in its event loop, not inside a native call, when stopped).
    const call = rawCall(own.address, '/tokenstream.v1.TokenStream/Complete', { windowBytes: 8192, paused: true });
    call.write(GenerateRequest.encode(GenerateRequest.fromPartial({ tokens: PROMPT_IDS, params: { temperature: 0, maxTokens: 1000, ignoreEos: true, logprobs: 20 }, includeBytes: true })).finish());
    call.end();
    await new Promise((r) => setTimeout(r, 300));
    await Promise.all(own.server.pool.get('tiny')!.workers.map((w) => w.terminate()));
    expect(await own.client.healthStatus('tiny')).toBe('NOT_SERVING');
    expect(await own.client.healthStatus('')).toBe('NOT_SERVING');
    expect(await errorCode(own.client.complete({ tokens: PROMPT_IDS }))).toBe(status.UNAVAILABLE);
    // The generation it held ends with INTERNAL (its one terminal), after what it had produced.
    call.resume();
    await call.done;
    expect(call.status).toBe(status.INTERNAL);
    expect(call.details).toMatch(/engine worker stopped/);
    expect(call.messages.length).toBeGreaterThan(0);
    call.close();
  } finally {
    await own.stop();
  }
});

/** Ends a worker's thread the way a crash would: not through shutdown() or terminate(), so the server sees a worker that stopped by itself. */
async function crash(w: EngineWorker): Promise<void> {
  await (w as unknown as { worker: Worker }).worker.terminate();
}

test('a worker that stops by itself fails what it held, is replaced, and the model keeps serving; past --worker-restarts it is not', async () => {
  const own = await startServer({ backpressure: { pauseTokens: 16, abortTokens: 4096, stallMs: 20_000 }, workerRestarts: 1 });
  try {
    const model = own.server.pool.get('tiny')!;
    const notices: string[] = [];
    model.onNotice = (m) => notices.push(m);
    const before = await collect(own.client.complete({ tokens: PROMPT_IDS, params: greedy }));
    const first = model.workers[0];
    // A generation held in the worker (paused: its client does not read), as in the test above.
    const call = rawCall(own.address, '/tokenstream.v1.TokenStream/Complete', { windowBytes: 8192, paused: true });
    call.write(GenerateRequest.encode(GenerateRequest.fromPartial({ tokens: PROMPT_IDS, params: { temperature: 0, maxTokens: 1000, ignoreEos: true }, includeBytes: true })).finish());
    call.end();
    await sleep(300);
    await crash(first);
    // Sent while no worker runs: it waits for the replacement instead of failing.
    const during = collect(own.client.complete({ tokens: PROMPT_IDS, params: greedy }));
    expect(await own.client.healthStatus('tiny')).toBe('SERVING');
    call.resume();
    await call.done;
    expect(call.status).toBe(status.INTERNAL);
    expect(call.details).toMatch(/engine worker stopped/);
    // The fresh worker generates what the first one did.
    expect((await during).tokenIds).toEqual(before.tokenIds);
    expect(model.workers[0]).not.toBe(first);
    expect(model.workers[0].alive).toBe(true);
    expect(notices).toEqual([
      expect.stringMatching(/^engine worker 0 of model 'tiny' stopped \(.+\); restarting it in 100 ms$/),
      "engine worker 0 of model 'tiny' restarted",
    ]);

    // A second stop within the minute is past --worker-restarts 1.
    await crash(model.workers[0]);
    for (let i = 0; i < 50 && (await own.client.healthStatus('tiny')) !== 'NOT_SERVING'; i++) await sleep(20);
    expect(await own.client.healthStatus('tiny')).toBe('NOT_SERVING');
    expect(await errorCode(own.client.complete({ tokens: PROMPT_IDS }))).toBe(status.UNAVAILABLE);
    expect(notices[2]).toMatch(/stopped \(.+\); not restarted \(1 restarts within a minute, --worker-restarts\)$/);
  } finally {
    await own.stop();
  }
});
